from trainingjob_operator.settings import Settings


def test_settings_read_the_environment() -> None:
    s = Settings.from_env({"TRAININGJOB_IMAGE_PULL_GRACE_SECONDS": "5",
                           "TRAININGJOB_HISTORY_LIMIT": "7"})
    assert s.image_pull_grace_seconds == 5.0 and s.history_limit == 7
    assert Settings.from_env({}) == Settings()
