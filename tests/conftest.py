import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A folder holding a tiny random Llama and the real SmolLM2 tokenizer, loadable by path."""
    from rlhf.models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tokenizer():
    from rlhf.models import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models are all small ops: on a shared 2-core machine a second OpenMP thread waiting for a
    busy core makes them several times slower, not faster. A module takes it with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_sft_dir(tmp_path_factory):
    """A tiny SFT policy PPO can move within a few dozen steps (tests/ppo_tiny.py), once per module."""
    import torch
    from ppo_tiny import save_tiny_sft

    torch.manual_seed(0)
    return save_tiny_sft(tmp_path_factory.mktemp("tiny-sft"))
