// Command tjcheck evaluates GitOps health logic on one Kubernetes object with the upstream
// libraries Argo CD and Flux use, so tests can see a resource the way those tools would:
//
//	tjcheck lua [--open-libs] SCRIPT.lua < object.json
//	                                         Argo CD resource health script (gopher-lua)
//	tjcheck kstatus < object.json            kstatus, sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute
//	tjcheck flux-expr --current EXPR [--in-progress EXPR] [--failed EXPR] < object.json
//	                                         Flux kustomize-controller spec.healthCheckExprs
//
// Each prints one JSON line {"status": ..., "message": ...} and exits 0; it exits 1 with the
// reason on stderr when the object, the script or an expression cannot be evaluated, and 2 on
// a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

const usage = `usage:
  tjcheck lua [--open-libs] SCRIPT.lua < object.json
  tjcheck kstatus < object.json
  tjcheck flux-expr --current EXPR [--in-progress EXPR] [--failed EXPR] < object.json`

// result is what every subcommand prints.
type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// usageError is a mistake in the command line rather than in what it evaluates.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	res, err := run(os.Args[1:], os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tjcheck: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "tjcheck: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader) (result, error) {
	if len(args) == 0 {
		return result{}, usageError{"no subcommand"}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "lua":
		flags := flag.NewFlagSet("lua", flag.ContinueOnError)
		flags.SetOutput(io.Discard)
		openLibs := flags.Bool("open-libs", false, "all standard libraries, as useOpenLibs: true")
		if err := flags.Parse(rest); err != nil {
			return result{}, usageError{err.Error()}
		}
		if flags.NArg() != 1 {
			return result{}, usageError{"lua takes exactly one script file"}
		}
		script, err := os.ReadFile(flags.Arg(0))
		if err != nil {
			return result{}, err
		}
		obj, err := readObject(stdin)
		if err != nil {
			return result{}, err
		}
		return luaHealth(flags.Arg(0), string(script), obj, *openLibs)
	case "kstatus":
		if len(rest) != 0 {
			return result{}, usageError{"kstatus takes no arguments"}
		}
		obj, err := readObject(stdin)
		if err != nil {
			return result{}, err
		}
		res, err := status.Compute(obj)
		if err != nil {
			return result{}, fmt.Errorf("kstatus: %w", err)
		}
		return result{Status: res.Status.String(), Message: res.Message}, nil
	case "flux-expr":
		var exprs kustomize.HealthCheckExpressions
		flags := flag.NewFlagSet("flux-expr", flag.ContinueOnError)
		flags.SetOutput(io.Discard)
		flags.StringVar(&exprs.Current, "current", "", "CEL expression: the object is Current")
		flags.StringVar(&exprs.InProgress, "in-progress", "", "CEL expression: InProgress")
		flags.StringVar(&exprs.Failed, "failed", "", "CEL expression: Failed")
		if err := flags.Parse(rest); err != nil {
			return result{}, usageError{err.Error()}
		}
		if flags.NArg() != 0 || exprs.Current == "" {
			return result{}, usageError{"flux-expr needs --current and no other arguments"}
		}
		obj, err := readObject(stdin)
		if err != nil {
			return result{}, err
		}
		return fluxHealth(exprs, obj)
	default:
		return result{}, usageError{fmt.Sprintf("unknown subcommand %q", cmd)}
	}
}

// readObject decodes one JSON object the way client-go's unstructured decoding does: whole
// numbers become int64, other numbers float64.
func readObject(r io.Reader) (*unstructured.Unstructured, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("stdin is not a JSON object: %w", err)
	}
	if obj == nil {
		return nil, errors.New("stdin is not a JSON object")
	}
	return &unstructured.Unstructured{Object: obj}, nil
}

// luaHealth runs an Argo CD resource health script as Argo CD's util/lua does
// (https://argo-cd.readthedocs.io/en/stable/operator-manual/health/#custom-health-checks):
// the object is the global obj, the script returns a table whose status must be one of
// Argo CD's health codes (else Argo CD reports Unknown, "Lua returned an invalid health
// status"), and the script gets 1 s. Like a custom check without useOpenLibs, only the base,
// package and table libraries are open (Argo CD adds a restricted os, which is not here);
// openLibs opens all of gopher-lua's, as useOpenLibs: true and Argo CD's built-in checks do.
func luaHealth(name, script string, obj *unstructured.Unstructured, openLibs bool) (result, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return result{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj.Object))
	chunk, err := L.Load(strings.NewReader(script), name)
	if err == nil {
		L.Push(chunk)
		err = L.PCall(0, lua.MultRet, nil)
	}
	if err != nil {
		return result{}, fmt.Errorf("lua script failed: %w", err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return result{}, fmt.Errorf("expected the lua script to return a table, not %s", L.Get(-1).Type())
	}
	var res result
	for field, dst := range map[string]*string{"status": &res.Status, "message": &res.Message} {
		switch v := hs.RawGetString(field).(type) {
		case lua.LString:
			*dst = string(v)
		case *lua.LNilType:
		default:
			return result{}, fmt.Errorf("hs.%s is a %s, not a string", field, v.Type())
		}
	}
	switch res.Status {
	case "Unknown", "Progressing", "Suspended", "Healthy", "Degraded", "Missing":
		return res, nil
	}
	return result{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
}

// toLua converts a decoded JSON value as Argo CD does: objects become tables, arrays 1-based
// tables, numbers, strings and bools Lua values; a null is nil, which leaves the key out of
// its table (and the element out of its array: LTable.Append skips nil).
func toLua(L *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetString(key, toLua(L, item))
		}
		return t
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(L, item))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	}
	return lua.LNil
}

// fluxHealth evaluates healthCheckExprs with Flux's own evaluator (fluxcd/pkg/runtime/cel,
// the version kustomize-controller v1.6 uses; RFC 0009 and
// https://fluxcd.io/flux/components/kustomize/kustomizations/#health-check-expressions):
// InProgress if status.observedGeneration differs from metadata.generation, else the first
// of inProgress, failed, current that is true, else InProgress. The object's top-level
// fields (apiVersion, kind, metadata, spec, status, ...) are the CEL variables. An
// expression that fails to evaluate (say, a missing field) leaves the object Unknown for
// Flux's status poller, which waits until its timeout; this prints Unknown with the error.
func fluxHealth(exprs kustomize.HealthCheckExpressions, obj *unstructured.Unstructured) (result, error) {
	evaluator, err := fluxcel.NewStatusEvaluator(&exprs)
	if err != nil {
		return result{}, err
	}
	res, err := evaluator.Evaluate(context.Background(), obj)
	if err != nil {
		return result{Status: status.UnknownStatus.String(), Message: err.Error()}, nil
	}
	return result{Status: res.Status.String(), Message: res.Message}, nil
}
