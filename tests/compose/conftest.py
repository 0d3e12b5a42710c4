"""Fixtures of the container tests: an engine (scripts/container_engine.sh) and the images (scripts/local_images.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from compose_support import Timeline, engine_script, engine_started_by_script, ensure_engine, ensure_images


@pytest.fixture(scope="session")
def terminal_write(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Writes a line to the terminal at once, past output capture (step timings are meant to be seen live)."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    reporter = pytestconfig.pluginmanager.getplugin("terminalreporter")

    def write(line: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line, flush=True)

    return write


@pytest.fixture(scope="session")
def container_engine(terminal_write: Callable[[str], None]) -> Iterator[str]:
    """The DOCKER_HOST of an engine that answers: Docker's if one does, else Podman set up by the script.

    What the script starts for this session it stops at the end (`container_engine.sh stop`), and the stop is
    checked: a test run leaves no engine behind that it did not find running."""
    timeline = Timeline(terminal_write, prefix="[containers]")
    running_before = engine_started_by_script()
    with timeline.step("engine (scripts/container_engine.sh start)"):
        docker_host = ensure_engine()
    timeline.note(f"DOCKER_HOST={docker_host}")
    yield docker_host
    if running_before or not engine_started_by_script():
        return  # found running (someone's `make engine-up`), or Docker answered and nothing was started
    with timeline.step("engine stopped (scripts/container_engine.sh stop)"):
        stopped = engine_script("stop")
    assert not engine_started_by_script(), f"container_engine.sh stop left the engine running:\n{stopped.stderr}"


@pytest.fixture(scope="session")
def local_images(container_engine: str, terminal_write: Callable[[str], None]) -> dict[str, str]:
    """PYTHON_IMAGE and KAFKA_IMAGE for docker-compose.yml (local stand-ins unless both are set already)."""
    timeline = Timeline(terminal_write, prefix="[containers]")
    with timeline.step("base images (scripts/local_images.py)"):
        images = ensure_images(container_engine)
    timeline.note(" ".join(f"{name}={value}" for name, value in images.items()))
    return images
