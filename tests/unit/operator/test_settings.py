import pytest
from trainingjob_operator.settings import Settings


def test_settings_read_the_environment() -> None:
    s = Settings.from_env({"TRAININGJOB_IMAGE_PULL_GRACE_SECONDS": "5",
                           "TRAININGJOB_HISTORY_LIMIT": "7"})
    assert s.image_pull_grace_seconds == 5.0 and s.history_limit == 7
    assert Settings.from_env({}) == Settings()


def test_leader_election_settings_and_their_defaults() -> None:
    s = Settings.from_env({"TRAININGJOB_LEADER_ELECT": "true", "POD_NAMESPACE": "ops",
                           "TRAININGJOB_LOG_FORMAT": "json"})
    assert (s.leader_elect, s.lease_namespace, s.log_format) == (True, "ops", "json")
    assert Settings.from_env({}).lease_namespace == "default"
    assert Settings.from_env({"TRAININGJOB_LEASE_NAMESPACE": "x",
                              "POD_NAMESPACE": "y"}).lease_namespace == "x"


@pytest.mark.parametrize(("name", "value"), [("TRAININGJOB_LEADER_ELECT", "maybe"),
                                             ("TRAININGJOB_HISTORY_LIMIT", "ten"),
                                             ("TRAININGJOB_LOG_FORMAT", "xml")])
def test_a_bad_setting_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})
