import pytest
import torch
from torch import nn

from playground.engines.fp8 import (
    CHANNEL_DYNAMIC, E4M3_MAX, E5M2_MAX, ONLINE, Fp8Linear, Fp8Scheme, quantize_linears, quantize_per_channel,
    quantize_per_tensor,
)


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
    fp8 = Fp8Linear.from_linear(linear)
    assert fp8.weight_fp8.dtype == torch.float8_e4m3fn
    ref, out = linear(x).float(), fp8(x).float()
    assert 0 < ((out - ref).norm() / ref.norm()).item() < 0.06


def e4m3_reference(x, weight, scheme: Fp8Scheme):
    """vLLM's W8A8 in float64, written out: both operands rounded onto E4M3 with amax/448 scales."""
    def grid(t, amax):
        scale = amax.double() / 448
        return (t.double() / scale).clamp(-448, 448).to(torch.float8_e4m3fn).double() * scale

    w_amax = weight.abs().amax(1, keepdim=True) if scheme.weight == "channel" else weight.abs().max()
    x_amax = x.abs().amax(1, keepdim=True) if scheme.activation == "token" else x.abs().max()
    return grid(x, x_amax) @ grid(weight, w_amax).T


@pytest.mark.parametrize("scheme", [ONLINE, CHANNEL_DYNAMIC, Fp8Scheme("tensor", "tensor")])
def test_fp8_linear_computes_vllms_w8a8_numbers(scheme):
    torch.manual_seed(2)
    linear = nn.Linear(96, 48, bias=False)
    linear.weight.data[3] *= 20  # one loud output row: per-channel scales differ from per-tensor
    x = torch.randn(5, 96)
    x[0] *= 50  # one loud token: per-token scales differ from per-tensor
    out = Fp8Linear.from_linear(linear, scheme, compute_dtype=torch.float32)(x).double()
    ref = e4m3_reference(x, linear.weight.detach(), scheme)
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-6)
    plain = x.double() @ linear.weight.detach().double().T
    assert not torch.allclose(out, plain, rtol=1e-3)  # the rounding is there


def test_the_weights_are_rounded_once_at_load_and_kept_on_the_e4m3_grid():
    torch.manual_seed(3)
    fp8 = Fp8Linear.from_linear(nn.Linear(32, 16).to(torch.bfloat16))
    assert fp8.weight_grid.dtype == torch.bfloat16
    assert torch.equal(fp8.weight_grid.float(), fp8.weight_fp8.float())  # every E4M3 value is exact in bf16
    assert fp8.weight_grid.abs().max().item() == 448.0


def test_per_token_activation_scales_make_each_row_independent_of_the_others():
    torch.manual_seed(4)
    fp8 = Fp8Linear.from_linear(nn.Linear(16, 8), ONLINE, compute_dtype=torch.float32)
    x = torch.randn(2, 16)
    alone = fp8(x[1:])
    beside_a_loud_row = fp8(torch.stack([x[0] * 1000, x[1]]))[1:]
    assert torch.equal(alone, beside_a_loud_row)
    per_tensor = Fp8Linear.from_linear(nn.Linear(16, 8), Fp8Scheme("tensor", "tensor"), compute_dtype=torch.float32)
    assert not torch.equal(per_tensor(x[1:]), per_tensor(torch.stack([x[0] * 1000, x[1]]))[1:])


def test_per_channel_scales_are_one_per_output_row():
    w = torch.randn(8, 4)
    q, scale = quantize_per_channel(w)
    assert scale.shape == (8, 1)
    assert torch.equal(q.float().abs().amax(1), torch.full((8,), 448.0))


def test_qkv_and_gate_up_share_one_scale_as_in_vllms_merged_layers():
    block = nn.Module()
    for name, rows in (("q_proj", 8), ("k_proj", 4), ("v_proj", 4), ("o_proj", 8)):
        setattr(block, name, nn.Linear(8, rows, bias=False))
    block.v_proj.weight.data *= 10  # the merged qkv_proj's amax is v's
    amax_v = block.v_proj.weight.abs().max().item()
    amax_o = block.o_proj.weight.abs().max().item()
    quantize_linears(block)
    for name in ("q_proj", "k_proj", "v_proj"):
        assert getattr(block, name).weight_scale.item() == pytest.approx(amax_v / 448, rel=1e-6)
    assert block.o_proj.weight_scale.item() == pytest.approx(amax_o / 448, rel=1e-6)


def test_quantize_linears_replaces_decoder_linears_but_keeps_lm_head():
    model = nn.Module()
    model.layers = nn.ModuleList([nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))])
    model.lm_head = nn.Linear(8, 16)
    assert quantize_linears(model) == 2
    assert isinstance(model.layers[0][0], Fp8Linear) and isinstance(model.lm_head, nn.Linear)


def test_a_merged_groups_input_is_quantized_once_and_gives_what_each_layer_gives_alone():
    torch.manual_seed(5)
    block = nn.Module()
    for name in ("q_proj", "k_proj", "v_proj"):
        setattr(block, name, nn.Linear(16, 8, bias=False))
    alone = {name: Fp8Linear.from_linear(getattr(block, name), ONLINE, compute_dtype=torch.float32) for name in
             ("q_proj", "k_proj", "v_proj")}
    quantize_linears(block, ONLINE, compute_dtype=torch.float32)
    assert block.q_proj.shared_input is block.k_proj.shared_input is block.v_proj.shared_input is not None
    x = torch.randn(3, 16)
    out = block.q_proj(x)
    first = block.q_proj.shared_input.last
    assert first[0] is x
    block.k_proj(x)
    assert block.k_proj.shared_input.last is first  # k read q's quantized input, not its own
    for name, layer in alone.items():  # the one scale of the merged layer aside, the numbers are each layer's own
        layer.weight_scale = getattr(block, name).weight_scale
        layer.weight_grid = getattr(block, name).weight_grid
        assert torch.equal(layer(x), getattr(block, name)(x))
    assert torch.equal(out, block.q_proj(x.clone()))  # a new tensor is quantized afresh
