-- Argo CD health of a training.dev/v1alpha1 TrainingJob.
-- Installed under resource.customizations.health.training.dev_TrainingJob (argocd-cm.yaml
-- embeds this file; tests/e2e/test_gitops_health.py checks that the two agree).
-- Argo CD runs it without the Lua string library, so it uses only `..` and base functions.
--
--   phase                                 health
--   none yet (operator has not seen it)   Progressing
--   Pending, Created, Deploying, Running  Progressing
--   Completed                             Healthy
--   Failed, DeployFailed                  Degraded
--   Stopped                               Suspended (stopped by a person; it never resumes)
--   anything else                         Unknown (this check is older than the operator)
-- An active job whose spec changed since the operator last wrote status (e.g. spec.stop
-- was just set) is Progressing until the operator catches up. A finished job's phase is
-- final: the CRD refuses spec changes once it has finished, so its health stays put.

local PROGRESSING = {Pending = true, Created = true, Deploying = true, Running = true}
local TERMINAL = {Completed = "Healthy", Failed = "Degraded", DeployFailed = "Degraded",
                  Stopped = "Suspended"}

local function explain(status)
  local reason = status.reason
  local message = status.message
  if reason ~= nil and reason ~= "" and message ~= nil and message ~= "" then
    return reason .. ": " .. message
  end
  if reason ~= nil and reason ~= "" then
    return reason
  end
  if message ~= nil and message ~= "" then
    return message
  end
  return status.phase
end

local hs = {}
local status = obj.status
if status == nil or status.phase == nil or status.phase == "" then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to pick up the job (no status yet)"
  return hs
end

local phase = status.phase
if TERMINAL[phase] ~= nil then
  hs.status = TERMINAL[phase]
  hs.message = explain(status)
  return hs
end

if PROGRESSING[phase] then
  hs.status = "Progressing"
  local generation = obj.metadata.generation
  local observed = status.observedGeneration
  if generation ~= nil and observed ~= nil and generation > observed then
    local wanted = "spec changed"
    if obj.spec ~= nil and obj.spec.stop == true then
      wanted = "stop requested"
    end
    hs.message = wanted .. " (generation " .. tostring(generation) ..
      "), waiting for the operator to act on it; last observed generation " ..
      tostring(observed) .. " was " .. phase .. ": " .. explain(status)
    return hs
  end
  hs.message = explain(status)
  return hs
end

hs.status = "Unknown"
hs.message = "unknown phase " .. tostring(phase) ..
  ": this health check is older than the operator; update it from deploy/argocd/health.lua"
return hs
