"""Where the shipped sample data lives, for tests."""

from pathlib import Path

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "services" / "manufacturer" / "sample_data"
