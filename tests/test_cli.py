import subprocess
import sys
from pathlib import Path

import pytest

from staa_snn import __version__
from staa_snn.cli import main


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"staa-snn {__version__}"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "staa-snn"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"staa-snn {__version__}"
