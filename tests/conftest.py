import pytest
import torch


def pytest_addoption(parser):
    parser.addoption(
        "--device", default="cpu",
        help="device for the device-aware tests (the fast paths against the reference, tests/test_kernels.py): "
             "their tensors and modules are made there, e.g. --device cuda (benchmarks/gpu_check.py runs this)",
    )


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def device(request) -> torch.device:
    """The device of ``--device`` (``cpu`` unless asked); skips the test if it is not available."""
    device = torch.device(request.config.getoption("--device"))
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("--device cuda, but torch sees no CUDA device")
    return device


@pytest.fixture
def on_device(device):
    """Make every tensor and module the test creates on ``device`` (``torch.set_default_device``)."""
    if device.type == "cpu":
        yield device
        return
    previous = torch.get_default_device()
    torch.set_default_device(device)
    try:
        yield device
    finally:
        torch.set_default_device(previous)
