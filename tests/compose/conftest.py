"""Fixtures of the container tests: an engine (scripts/container_engine.sh) and the images (scripts/local_images.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from compose_support import Timeline, ensure_engine, ensure_images


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
def container_engine(terminal_write: Callable[[str], None]) -> str:
    """The DOCKER_HOST of an engine that answers: Docker's if one does, else Podman set up by the script."""
    timeline = Timeline(terminal_write, prefix="[containers]")
    with timeline.step("engine (scripts/container_engine.sh start)"):
        docker_host = ensure_engine()
    timeline.note(f"DOCKER_HOST={docker_host}")
    return docker_host


@pytest.fixture(scope="session")
def local_images(container_engine: str, terminal_write: Callable[[str], None]) -> dict[str, str]:
    """PYTHON_IMAGE and KAFKA_IMAGE for docker-compose.yml (local stand-ins unless both are set already)."""
    timeline = Timeline(terminal_write, prefix="[containers]")
    with timeline.step("base images (scripts/local_images.py)"):
        images = ensure_images(container_engine)
    timeline.note(" ".join(f"{name}={value}" for name, value in images.items()))
    return images
