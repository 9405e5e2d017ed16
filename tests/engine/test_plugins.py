"""Third-party services: found through the ``hookline.services`` entry points.

The plugins are "installed" the way pip leaves them, without pip: a ``*.dist-info`` folder
with an ``entry_points.txt`` on ``sys.path``. The good plugin is the shipped example
(examples/hookline-example-plugin), so that is what gets tested."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.registry import BUILTIN_MODULES, ENTRY_POINT_GROUP, Registry
from engine.settings import Settings
from tests.engine import probe
from tests.engine.conftest import FAST

EXAMPLE = Path(__file__).parents[2] / "examples" / "hookline-example-plugin"


def install(site: Path, dist: str, entry_points: dict[str, str]) -> None:
    """What pip leaves behind for a package: its metadata, with the entry points."""
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path / "site-packages"
    site.mkdir()
    install(site, "hookline-example-plugin", {"example": "hookline_example:service"})
    install(site, "hookline-broken-plugin", {"broken": "hookline_broken:service"})
    (site / "hookline_broken.py").write_text(
        'raise ImportError("hookline_broken needs libfoo 2, found 1")\n')
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(site))
    yield
    for name in ("hookline_example", "hookline_broken"):
        sys.modules.pop(name, None)


def test_plugins_load_and_a_broken_one_is_listed(plugins: None) -> None:
    registry = Registry.load()

    example = registry.service("example")
    assert set(example.reactions) == {"shout"} and set(example.triggers) == {"counter"}
    assert registry.broken == {"broken": "ImportError: hookline_broken needs libfoo 2, found 1"}
    builtin = Registry.load(plugins=False)
    assert set(registry.services) == set(builtin.services) | {"example"}


def test_without_plugins_nothing_extra_loads(plugins: None) -> None:
    registry = Registry.load(plugins=False)
    assert "example" not in registry.services and not registry.broken


def test_a_plugin_reusing_a_builtin_id_is_refused(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site-packages"
    install(site, "hookline-impostor", {"timer": "hookline_impostor:service"})
    (site / "hookline_impostor.py").write_text(
        "from engine import Service\nservice = Service('timer', 'Timer', 'Mine.')\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        registry = Registry.load()
    finally:
        sys.modules.pop("hookline_impostor", None)
    assert registry.broken == {"timer": "CatalogError: Two services declare the id 'timer'"}
    assert registry.service("timer").description != "Mine."


@pytest.fixture
async def engine(plugins: None, data_dir: Path) -> AsyncIterator[Engine]:
    probe.controls.__init__()  # type: ignore[misc]
    registry = Registry.load(modules=(*BUILTIN_MODULES, "tests.engine.probe"))
    engine = Engine(data_dir, settings=Settings.from_mapping(FAST), registry=registry,
                    listen=False)
    await engine.start()
    yield engine
    await engine.aclose()


async def test_a_plugin_reaction_runs_in_an_area(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "Shout what comes in",
        "trigger": {"service": "probe", "trigger": "items"},
        "reactions": [
            {"service": "example", "reaction": "shout",
             "params": {"text": "{{ trigger.title }}!"}},
            {"service": "probe", "reaction": "record",
             "params": {"text": "{{ reactions[0].text }}"}},
        ],
    }))
    await engine.run_now(area.id, {"title": "hello plugin", "n": 1})
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["HELLO PLUGIN!"]
    (run,) = await engine.store.runs(area.id)
    assert run["status"] == "succeeded"


async def test_a_plugin_trigger_polls_in_an_area(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "Count",
        "interval": 3600,
        "trigger": {"service": "example", "trigger": "counter", "params": {"step": 5}},
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "count {{ trigger.count }}"}}],
    }))
    spec = engine.registry.trigger("example", "counter")
    params = area.spec.trigger.params
    assert await engine.poller.poll(area, spec, params, 3600) == 0  # the first check primes
    await engine.poller.poll(area, spec, params, 3600)
    await engine.wait_idle()
    # (the engine's own first check may have come in between: it counts too)
    assert probe.controls.received[0]["text"] == "count 10"


def test_the_example_passes_its_own_tests() -> None:
    """The example's tests are what a plugin author copies: keep them working."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE)],
        capture_output=True, text=True, timeout=120, check=False, cwd=EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout
