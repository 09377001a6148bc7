"""State and outputs in a bucket, end to end: a whole cloud config through ``dapctl apply``,
``plan`` and ``state list`` in S3 (moto's server), GCS and Azure (their emulators:
``tests/object_stores.py``); for GCS and Azure also a bucket that does not exist is named,
not taken for a first run, and a missing package names its extra before any job
(``test_state_s3.py`` has S3's own)."""

from __future__ import annotations

import importlib
import json

import pytest

from dapctl.errors import ConfigError
from dapctl.loading import load_config
from dapctl.state import open_store
from tests.apply_helpers import config_text, environ
from tests.object_stores import AZURITE_KEY
from tests.s3_fixtures import SECRET_KEY

A = "univ_a/core/canvas.accounts"
STORES = ["gcs", "azure"]


def _cloud_config(emu, bucket) -> str:
    output = bucket.url("out/{table}/{kind}-{timestamp}.{format}.gz")
    text = config_text(emu, output=output)
    return text.replace('state = "state/dapctl.state.json"', f'state = "{bucket.url("states/")}"')


@pytest.fixture(params=STORES)
def cloud(request):
    return request.getfixturevalue(f"{request.param}_bucket")


@pytest.fixture(params=["s3", *STORES])
def any_cloud(request):
    """A bucket of every store: S3 on moto's server, the others on their emulators."""
    return request.getfixturevalue("s3" if request.param == "s3" else f"{request.param}_bucket")


def test_a_config_with_state_and_outputs_in_the_bucket_applies_plans_and_lists(
    any_cloud, make_emulator, write_config, run_cli
):
    cloud = any_cloud
    emu = make_emulator()
    path = write_config(_cloud_config(emu, cloud))

    first = run_cli("apply", str(path), environ=environ(emu))
    emu.advance(600)
    emu.change("canvas", "accounts", inserts=2)
    plan = run_cli("plan", str(path), "--json", environ=environ(emu))
    second = run_cli("apply", str(path), environ=environ(emu))
    listed = run_cli("state", "list", str(path), environ=environ(emu))

    assert first.code == 0 and second.code == 0, first.stdout + first.stderr + second.stderr
    assert {s["action"] for s in json.loads(plan.stdout)["steps"]} == {"incremental"}
    assert A in listed.stdout
    kept = cloud.objects("states/")
    runs = [k for k in kept if k.startswith("states/dapctl/runs/")]
    assert len(runs) == 2  # the run history beside the state: one per apply
    assert sorted(set(kept) - set(runs)) == ["states/dapctl/dapctl.state.json"], "the lock is gone"
    state = json.loads(cloud.read(cloud.url("states/dapctl/dapctl.state.json")))
    assert state["serial"] >= 4 and state["steps"][A]["files"][0].startswith(cloud.url("out/"))
    assert len(cloud.objects("out/accounts/")) == 2 and not list(path.parent.iterdir())[1:]
    secrets = (*environ(emu).values(), SECRET_KEY, AZURITE_KEY)  # DAP's, S3's and Azure's
    shown = "".join(r.stdout + r.stderr for r in (first, plan, second, listed))
    assert not [secret for secret in secrets if secret in shown]


def test_a_state_in_a_bucket_that_does_not_exist_is_named(
    cloud, make_emulator, write_config, run_cli
):
    emu = make_emulator()
    missing = f"{cloud.bucket}-missing"
    text = _cloud_config(emu, cloud).replace(cloud.url(), f"{cloud.scheme}://{missing}/")
    path = write_config(text)

    result = run_cli("plan", str(path), environ=environ(emu))

    assert result.code == 1, result
    assert f"{cloud.scheme}://{missing}: no such bucket" in result.stderr, result.stderr
    assert "first run" not in result.stdout
    assert emu.stats.jobs_created == 0


@pytest.mark.parametrize(
    ("scheme", "package", "extra"), [("gs", "gcsfs", "gcs"), ("az", "adlfs", "azure")]
)
def test_a_bucket_state_without_its_package_names_the_extra(
    scheme, package, extra, make_emulator, write_config, run_cli
):
    def without(name: str) -> object:
        if name.split(".")[0] == package:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return importlib.import_module(name)

    emu = make_emulator()
    url = f"{scheme}://bucket/states/"
    path = write_config(config_text(emu).replace('"state/dapctl.state.json"', f'"{url}"'))

    result = run_cli("validate", str(path), environ=environ(emu), importer=without)

    assert result.code == 1 and f"pip install 'dapctl[{extra}]'" in result.stderr, result.stderr
    assert "settings.state" in result.stderr
    with pytest.raises(ConfigError, match=rf"pip install 'dapctl\[{extra}\]'"):
        open_store(load_config(path), importer=without)
