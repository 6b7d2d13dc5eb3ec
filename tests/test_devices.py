"""One precision rule for train and predict: bf16 where supported, else fp16 on CUDA, fp32 on CPU."""

from __future__ import annotations

import pytest
import torch

from spectralmoe_cli.engine.runtime.devices import autocast, autocast_dtype


def test_the_cpu_runs_in_full_precision_without_autocast():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu) is None
    a = torch.ones(4, 4)
    with autocast(cpu, autocast_dtype(cpu)):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ a).dtype == torch.float32


def test_a_chosen_dtype_turns_autocast_on():
    cpu = torch.device("cpu")
    a = torch.ones(4, 4)
    with autocast(cpu, torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_prefers_bf16_and_falls_back_to_fp16():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert autocast_dtype(torch.device("cuda:0")) == expected
