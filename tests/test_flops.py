import pytest
import torch
import torch.nn.functional as F

from vin.flops import count_flops, flops_of


class AttentionAndLinear(torch.nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_attention_and_linear_match_the_hand_count(device: str) -> None:
    b, n, d, h = 2, 48, 32, 4
    layer = AttentionAndLinear(d, h).to(device)
    x = torch.randn(b, n, d, device=device)
    with torch.no_grad(), count_flops() as flops:
        layer(x)
    linear = 2 * b * n * d * 3 * d
    attention = 2 * (2 * b * h * n * n * (d // h))  # q @ k^T, then p @ v
    assert flops.total == linear + attention
    assert flops.attention() == attention


def test_cpu_attention_backward_is_counted() -> None:
    q = torch.randn(1, 2, 16, 8, requires_grad=True)
    result = flops_of(lambda: F.scaled_dot_product_attention(q, q, q).sum().backward())
    forward = 2 * 2 * 2 * 16 * 16 * 8
    assert result.by_operator["aten._scaled_dot_product_flash_attention_for_cpu"] == forward
    assert result.by_operator["aten._scaled_dot_product_flash_attention_for_cpu_backward"] == 2.5 * forward
