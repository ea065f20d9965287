"""No study seeds torch's global generator for its callers: every draw that takes no generator
runs under hpolab.seeding.global_seed, which seeds it for one block and restores it."""

from pathlib import Path

import torch
from torch import nn

from hpolab.seeding import global_seed
from hpolab.studies import local_sgd_tasks

LIBRARY = Path(__file__).resolve().parents[1] / "hpolab"


def test_a_seeded_block_draws_the_seeds_numbers_and_leaves_the_callers_state_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with global_seed(7):
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)
    assert torch.equal(inside, torch.rand(3))  # the same numbers the old global seeding drew


def test_a_study_model_is_its_seeds_alone_and_does_not_reseed_the_caller():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    model = local_sgd_tasks.make_model("mnist-mlp", 20, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(3)
    reference = nn.Sequential(nn.Linear(20, local_sgd_tasks.HIDDEN), nn.ReLU(), nn.Linear(local_sgd_tasks.HIDDEN, 10))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))


def test_only_the_seeding_module_calls_torch_manual_seed():
    callers = [str(path.relative_to(LIBRARY)) for path in LIBRARY.rglob("*.py")
               if "torch.manual_seed(" in path.read_text() and path.name != "seeding.py"]
    assert callers == []
