import torch
from torch import nn

from playground.engines.fp8 import E4M3_MAX, E5M2_MAX, Fp8Linear, quantize_linears, quantize_per_tensor


def test_e4m3_and_e5m2_maxima_are_448_and_57344():
    assert E4M3_MAX == 448.0 and E5M2_MAX == 57344.0


def test_per_tensor_scale_is_amax_over_448_and_the_largest_weight_maps_to_448():
    torch.manual_seed(0)
    w = torch.randn(256, 128) * 0.05
    q, scale = quantize_per_tensor(w)
    assert q.dtype == torch.float8_e4m3fn
    assert scale.item() == torch.tensor(w.abs().max().item() / 448).item()
    assert q.float().abs().max().item() == 448.0
    relative = ((q.float() * scale - w).norm() / w.norm()).item()
    assert 0 < relative < 0.05  # E4M3 keeps 3 mantissa bits


def test_fp8_linear_matches_the_original_layer_closely():
    torch.manual_seed(1)
    linear = nn.Linear(64, 32).to(torch.bfloat16)
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    fp8 = Fp8Linear(linear)
    assert fp8.weight_fp8.dtype == torch.float8_e4m3fn
    ref, out = linear(x).float(), fp8(x).float()
    assert ((out - ref).norm() / ref.norm()).item() < 0.06


def test_quantize_linears_replaces_decoder_linears_but_keeps_lm_head():
    model = nn.Module()
    model.layers = nn.ModuleList([nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))])
    model.lm_head = nn.Linear(8, 16)
    assert quantize_linears(model) == 2
    assert isinstance(model.layers[0][0], Fp8Linear) and isinstance(model.lm_head, nn.Linear)
