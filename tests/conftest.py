"""Shared test setup: no network, fixed threads and seeds, quiet model loading."""
import os

# Set before transformers is imported anywhere: no Hub calls, ever, from the tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(123)


@pytest.fixture(scope="session", autouse=True)
def _quiet_loading():
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (many tiny matmuls are faster so), then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    """A tiny seeded GPT-2 (2 layers, width 32, 100 tokens): timing and hardware tests drive it."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(123)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return GPT2LMHeadModel(config).eval()
