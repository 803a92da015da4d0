"""Fixtures for the runner tests."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread: micro models gain nothing from two, and on a busy 2-core CI runner
    OpenMP threads spinning against other processes can slow a step down tenfold."""
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
