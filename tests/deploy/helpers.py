"""Helpers shared by the deployment tests."""
from pathlib import Path


def compose_binary() -> Path:
    import compose

    return Path(compose.__file__).parent / "docker-compose"


# The secrets compose cannot generate: required, no default.
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "FLUSSO_DB_OWNER_PASSWORD", "FLUSSO_BOOTSTRAP_API_KEY", "FLUSSO_PII_HASH_KEY",
                    "PII_HASH_KEY")
