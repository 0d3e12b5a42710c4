"""`make up` (scripts/compose_up.sh) checks the compose file's images before building: an image that cannot be had
is named with the variable that picks it, instead of a registry error from deep inside a build."""

from __future__ import annotations

import os
import subprocess

import pytest
from compose_support import ROOT

pytestmark = [pytest.mark.compose]

SCRIPT = ROOT / "scripts" / "compose_up.sh"


def check(container_engine: str, **images: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHON_IMAGE", "KAFKA_IMAGE")}
    return subprocess.run(["bash", str(SCRIPT), "--check"], capture_output=True, text=True, timeout=400, check=False,
                          cwd=ROOT, env={**env, **images, "DOCKER_HOST": container_engine})


def test_images_the_engine_has_pass_the_check(container_engine: str, local_images: dict[str, str]) -> None:
    done = check(container_engine, **local_images)
    assert done.returncode == 0, done.stderr
    for name, image in local_images.items():
        assert f"compose_up: {name}={image} (on the engine)" in done.stderr


def test_an_image_that_cannot_be_had_is_named_with_its_variable(container_engine: str,
                                                                 local_images: dict[str, str]) -> None:
    missing = "localhost/backflush-no-such-kafka:0"
    done = check(container_engine, PYTHON_IMAGE=local_images["PYTHON_IMAGE"], KAFKA_IMAGE=missing)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"compose_up: error: cannot get image {missing} (KAFKA_IMAGE, the broker and the kafka-init job)" \
        in done.stderr
    assert "set KAFKA_IMAGE to an image this engine has or can pull" in done.stderr
    assert "PYTHON_IMAGE" not in done.stderr.split("error:", 1)[1], "only the failing image is blamed"


def test_an_unknown_argument_is_refused() -> None:
    refused = subprocess.run(["bash", str(SCRIPT), "--chek"], capture_output=True, text=True, timeout=30,
                             check=False, cwd=ROOT)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "compose_up: error: unknown argument '--chek' (use --check, or nothing)"
