"""The flow backbone's switches (FAVE-NOTES sec. 9): each changes what it claims, and only that."""

from __future__ import annotations

import pytest
import torch

from fave.errors import FaveError
from fave.models.flow_backbone import BackboneConfig, FlowBackbone

N = 30


def net(**kw) -> FlowBackbone:
    torch.manual_seed(0)
    return FlowBackbone(BackboneConfig(hidden=16, heads=2, layers=2, decoder_hidden=(8, 8), max_len=8, **kw), N, False)


def history() -> torch.Tensor:
    return torch.tensor([[0, 0, 3, 7, 1, 9], [4, 5, 6, 2, 8, 3]])


def last_output(m: FlowBackbone, h: torch.Tensor) -> torch.Tensor:
    m.eval()
    B = h.shape[0]
    t = torch.full((B,), 0.5)
    return m(h, torch.zeros(B, 16), t, torch.ones(B))[0][:, -1]


def test_item_init_std_sets_the_embedding_scale() -> None:
    assert net().items.std().item() == pytest.approx(0.02, rel=0.1)
    big = net(item_init_std=1.0)
    assert big.items.std().item() == pytest.approx(1.0, rel=0.1)
    assert big.item_emb.weight[0].abs().sum() == 0  # the padding row stays zero


def test_recon_norm_all_divides_by_every_entry() -> None:
    h = history()
    losses = {}
    for norm in ("selected", "all"):
        m = net(recon_norm=norm).eval()
        h_mid = torch.randn(2, h.shape[1], 16, generator=torch.Generator().manual_seed(1))
        torch.manual_seed(5)
        losses[norm] = m.reconstruction_loss(h_mid, h).item()
    # replay the negative draw: positives + as many sampled zeros, in expectation
    target = torch.zeros(2, N + 1).scatter_(1, h, 1.0)[:, 1:]
    n_pos = target.sum(1, keepdim=True)
    torch.manual_seed(5)
    negatives = (torch.rand_like(target) < n_pos / (N - n_pos)) & (target == 0)
    selected = ((target > 0) | negatives).sum().item()
    assert losses["all"] / losses["selected"] == pytest.approx(selected / (2 * N), rel=1e-5)


def test_positions_none_makes_the_last_output_ignore_the_order_before_it() -> None:
    h = history()[1:]
    swapped = h[:, [2, 0, 1, 4, 3, 5]]  # earlier items permuted, the last one kept

    def change(positions: str) -> float:
        m = net(positions=positions)
        with torch.no_grad():  # weights large enough for positions to show
            for p in m.parameters():
                p.normal_(0.0, 0.5)
        return (last_output(m, h) - last_output(m, swapped)).abs().max().item()

    assert change("none") < 1e-5
    assert change("rotary") > 1e-2 and change("learned") > 1e-2


def test_learned_positions_add_parameters_only_when_chosen() -> None:
    assert "pos_emb.emb.weight" not in net().state_dict()
    assert "pos_emb.emb.weight" in net(positions="learned").state_dict()


def test_visible_padding_keys_change_only_padded_rows() -> None:
    hidden, visible = net(), net(padding_keys="visible")
    a, b = last_output(hidden, history()), last_output(visible, history())
    assert not torch.allclose(a[0], b[0], atol=1e-5)  # row 0 is padded
    assert torch.allclose(a[1], b[1], atol=1e-6)  # row 1 has no padding


def test_embedding_dropout_before_or_after_the_norm() -> None:
    h = torch.randint(1, N, (64, 8))
    after = net(emb_dropout=0.5).train().embed_history(h)
    before = net(emb_dropout=0.5, emb_dropout_order="before_norm").train().embed_history(h)
    assert (after == 0).float().mean().item() == pytest.approx(0.5, abs=0.05)  # dropped after the norm
    assert (before == 0).float().mean().item() < 0.01  # the norm runs after the dropout


def test_unknown_switch_value_is_a_clear_error() -> None:
    with pytest.raises(FaveError, match="params.positions"):
        net(positions="sinusoid")


@pytest.mark.parametrize("decoder_output", ["linear", "tied"])
@pytest.mark.parametrize("norm", ["selected", "all"])
def test_gathered_reconstruction_is_the_balanced_mse_on_the_entries_it_draws(norm: str, decoder_output: str) -> None:
    m = net(recon="gathered", recon_norm=norm, decoder_output=decoder_output).eval()
    if decoder_output == "tied":  # a nonzero item bias, so that the test sees it gathered
        torch.nn.init.normal_(m.decoder_bias, 0.0, 0.5)
    h = history()
    B, L = h.shape
    h_mid = torch.randn(B, L, 16, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(7)
    got = m.reconstruction_loss(h_mid, h)
    full = m.decode(h_mid[:, -1])  # [B, N], the same decoder applied to every entry
    # replay: positives = the distinct history items; one uniform draw per positive, positives dropped
    torch.manual_seed(7)
    entries = []
    draws = torch.randint(1, N + 1, (sum(len(set(r) - {0}) for r in h.tolist()),))
    k = 0
    for b, row in enumerate(h.tolist()):
        pos = sorted(set(row) - {0})
        entries += [(b, j, 1.0) for j in pos]
        entries += [(b, int(j), 0.0) for j in draws[k : k + len(pos)] if int(j) not in pos]
        k += len(pos)
    sq = sum((full[b, j - 1].item() - t) ** 2 for b, j, t in entries)
    want = sq / (B * N) if norm == "all" else sq / len(entries)
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_sampled_target_ce_runs_on_every_flow_model_config() -> None:
    m = net(ce_loss="sampled", ce_negatives=5)
    f, target = torch.randn(4, 16), torch.tensor([1, 5, 9, 30])
    assert torch.isfinite(m.target_ce(f, target))
    full, chunked = net(), net(ce_loss="chunked")
    assert chunked.target_ce(f, target).item() == pytest.approx(full.target_ce(f, target).item(), rel=1e-6)


def test_tied_decoder_scores_against_the_item_embeddings_and_does_not_grow_as_d2_x_n() -> None:
    m = net(decoder_output="tied")
    assert m.decoder[-1].weight.shape == (16, 8)  # d2 -> D, not d2 -> N
    assert m.decoder_bias.shape == (N,)
    h = torch.randn(3, 16)
    z = m.decoder(h)  # [B, D]
    assert m.decode(h).shape == (3, N)
    assert torch.allclose(m.decode(h), z @ m.items.T + m.decoder_bias, atol=1e-6)

    def size(n: int, output: str) -> int:
        c = BackboneConfig(hidden=16, heads=2, layers=2, decoder_hidden=(8, 8), max_len=8, decoder_output=output)
        return sum(p.numel() for p in FlowBackbone(c, n, False).parameters())

    assert size(300, "tied") - size(30, "tied") == 270 * (16 + 1)  # embeddings and item biases only
    assert size(300, "linear") - size(30, "linear") == 270 * (16 + 8 + 1)  # + a d2-wide row per item


def test_linear_decoder_state_dict_is_unchanged_by_the_tied_option() -> None:
    keys = set(net().state_dict())
    assert "decoder_bias" not in keys and net().decoder[-1].weight.shape == (N, 8)
    assert keys | {"decoder_bias"} == set(net(decoder_output="tied").state_dict())


def test_entries_of_the_tied_decoder_equal_its_full_output() -> None:
    m = net(decoder_output="tied")
    torch.nn.init.normal_(m.decoder_bias, 0.0, 0.5)
    h = torch.randn(3, 16)
    rows, items = torch.tensor([0, 0, 2, 1]), torch.tensor([1, 30, 7, 7])
    assert torch.allclose(m.decode_entries(h, rows, items), m.decode(h)[rows, items - 1], atol=1e-6)
