"""Properties of the similarity metrics (CKA, mutual k-NN, Information Imbalance) and agreement with the
reference implementations they follow."""

import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from representation_probe import ConfigError
from representation_probe.metrics.cka import MinibatchCKA, center_gram, cka_matrix, hsic, linear_cka
from representation_probe.metrics.neighbours import (information_imbalance, information_imbalance_matrix, mutual_knn,
                                                     mutual_knn_matrix)


def features(n: int, d: int, seed: int = 0, latent: int = 8) -> torch.Tensor:
    """Rows with structure (a few latent factors plus noise), so neighbourhoods mean something."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, latent, generator=gen, dtype=torch.float64)
    return z @ torch.randn(latent, d, generator=gen, dtype=torch.float64) \
        + 0.3 * torch.randn(n, d, generator=gen, dtype=torch.float64)


def related(x: torch.Tensor, d: int, seed: int = 1) -> torch.Tensor:
    """A noisy non-linear view of x: similar to x, not identical."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(x.shape[1], d, generator=gen, dtype=torch.float64)
    return torch.tanh(x @ weights / math.sqrt(x.shape[1])) + 0.2 * torch.randn(len(x), d, generator=gen, dtype=x.dtype)


def orthogonal(d: int, seed: int = 2) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))[0]


X = features(300, 40)
Y = related(X, 60)


# ---- self-similarity, invariances, chance ------------------------------------------------------------
def test_self_similarity():
    assert linear_cka(X, X) == pytest.approx(1, abs=1e-12)
    assert linear_cka(X, X, debiased=True) == pytest.approx(1, abs=1e-12)
    assert mutual_knn(X, X, k=10) == 1
    assert information_imbalance(X, X, k=1) == pytest.approx(2 / len(X))
    assert information_imbalance(X, X, k=5) == pytest.approx(2 / len(X) * 3)  # ranks 1..5: mean 3


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    for debiased in (False, True):
        base = linear_cka(X, Y, debiased)
        assert 0.3 < base < 0.99  # related, not identical: the invariance is not trivially 1 == 1
        assert linear_cka(X @ orthogonal(40) * 7.5, Y, debiased) == pytest.approx(base, abs=1e-10)
        assert linear_cka(X, 0.01 * Y @ orthogonal(60, seed=3), debiased) == pytest.approx(base, abs=1e-10)
    # and not to an anisotropic scaling: CKA is not invariant to any invertible linear map
    assert abs(linear_cka(X * torch.linspace(0.1, 10, 40, dtype=torch.float64), Y) - linear_cka(X, Y)) > 1e-3


def test_neighbour_metrics_are_invariant_to_isotropic_scaling():
    assert mutual_knn(X * 123.0, Y * 0.01, k=10) == mutual_knn(X, Y, k=10)
    assert information_imbalance(X * 123.0, Y * 0.01, k=3) == information_imbalance(X, Y, k=3)
    # Euclidean ranks are also invariant to rotations (the clamp of mutual k-NN is per coordinate: not)
    assert information_imbalance(X @ orthogonal(40), Y, k=1) == pytest.approx(information_imbalance(X, Y, k=1))


def test_shuffled_rows_give_chance_values():
    n, k = len(X), 10
    shuffled = Y[torch.randperm(n, generator=torch.Generator().manual_seed(5))]
    assert abs(linear_cka(X, shuffled, debiased=True)) < 0.03
    assert linear_cka(X, shuffled) < 0.2 < linear_cka(X, Y)
    assert mutual_knn(X, shuffled, k) == pytest.approx(k / (n - 1), abs=0.02)
    assert mutual_knn(X, Y, k) > 0.2
    assert information_imbalance(X, shuffled) == pytest.approx(1, abs=0.1)
    assert information_imbalance(X, Y) < 0.5


def test_information_imbalance_is_asymmetric_when_one_space_holds_more():
    """x = (a, b) holds y = a: x predicts y's neighbours better than y predicts x's."""
    gen = torch.Generator().manual_seed(7)
    a, b = torch.randn(400, 3, generator=gen), torch.randn(400, 3, generator=gen)
    matrix = information_imbalance_matrix([torch.cat([a, b], dim=1), a], k=1)
    assert matrix[0, 1] < 0.1 and matrix[1, 0] > 0.4


# ---- the two forms of CKA and the HSIC estimators ----------------------------------------------------
def test_gram_and_feature_forms_of_cka_agree():
    for debiased in (False, True):
        feature_form = linear_cka(X, Y, debiased)  # d < n: computed from the features
        gram_form = float(cka_matrix([X, Y], debiased)[0, 1])  # from the centred Gram matrices
        assert feature_form == pytest.approx(gram_form, abs=1e-10)
    xc, yc = X.double() - X.double().mean(0), Y.double() - Y.double().mean(0)
    kornblith = (yc.T @ xc).square().sum() / ((xc.T @ xc).norm() * (yc.T @ yc).norm())
    assert linear_cka(X, Y) == pytest.approx(float(kornblith), abs=1e-12)
    wide = features(30, 500)  # d > n: the Gram form
    assert linear_cka(wide, related(wide, 400)) == pytest.approx(float(cka_matrix([wide, related(wide, 400)])[0, 1]))


def test_u_centred_gram_gives_the_unbiased_hsic_of_song_et_al():
    k, l = (m.double() @ m.double().T for m in (X, Y))
    n = len(X)
    u_centred = (center_gram(k, debiased=True) * center_gram(l, debiased=True)).sum() / (n * (n - 3))
    assert float(u_centred) == pytest.approx(float(hsic(k, l, debiased=True)), rel=1e-10)
    assert torch.all(center_gram(k, debiased=True).diagonal() == 0)  # zeroed, not K - diag(K) broadcast
    biased = hsic(k, l)
    h = torch.eye(n, dtype=torch.float64) - 1 / n
    assert float(biased) == pytest.approx(float(torch.trace(k @ h @ l @ h) / (n - 1) ** 2), rel=1e-10)


def test_cka_matrix_holds_every_pair():
    reps = [X, Y, X[:, :10], torch.tanh(Y)]
    matrix = cka_matrix(reps, debiased=True)
    assert torch.allclose(matrix, matrix.T) and torch.allclose(matrix.diagonal(), torch.ones(4, dtype=torch.float64))
    for i in range(4):
        for j in range(4):
            assert float(matrix[i, j]) == pytest.approx(linear_cka(reps[i], reps[j], debiased=True), abs=1e-10)


def test_constant_features_give_nan_not_an_error():
    constant = torch.ones(50, 4)
    assert math.isnan(linear_cka(constant, X[:50]))
    assert math.isnan(linear_cka(constant, X[:50], debiased=True))
    matrix = cka_matrix([X[:50], constant, Y[:50]])
    assert math.isnan(matrix[0, 1]) and math.isfinite(matrix[0, 2])


# ---- minibatch CKA -----------------------------------------------------------------------------------
def test_minibatch_cka_with_one_batch_is_the_full_estimator():
    accumulator = MinibatchCKA()
    accumulator.update([X, Y, torch.tanh(X)])
    assert torch.allclose(accumulator.compute(), cka_matrix([X, Y, torch.tanh(X)], debiased=True), atol=1e-12)


def test_minibatch_cka_converges_to_the_full_estimator():
    x, y = features(4000, 30, seed=11), None
    y = related(x, 50, seed=12)
    full = linear_cka(x, y, debiased=True)
    errors = []
    for batches in (2, 40):  # batches of the same 100 inputs: more of them, a smaller error
        accumulator = MinibatchCKA()
        for i in range(batches):
            rows = slice(100 * i, 100 * (i + 1))
            accumulator.update([x[rows], y[rows]])
        errors.append(abs(float(accumulator.compute()[0, 1]) - full))
    assert errors[1] < 0.02 and errors[1] < errors[0]


def test_minibatch_cka_refuses_a_changing_batch_size():
    accumulator = MinibatchCKA()
    accumulator.update([X[:100], Y[:100]])
    with pytest.raises(ConfigError, match="constant batch size"):
        accumulator.update([X[100:150], Y[100:150]])


# ---- the reference implementations -------------------------------------------------------------------
def dadapy_imbalance(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """dadapy's algorithm (dadapy/_utils/metric_comparisons.py, _return_ranks/_return_imbalance, v0.3.4):
    neighbour lists from scikit-learn (as dadapy's compute_nn_distances), self at position 0, the rank of
    x's neighbour = its position in y's list, imbalance = mean rank / (N / 2). dadapy itself does not
    install next to numpy 2 (its C extensions need numpy < 2), so its algorithm is restated here."""
    n = len(x)
    lists = [NearestNeighbors(n_neighbors=n).fit(m).kneighbors(m, return_distance=False) for m in (x, y)]
    ranks = [np.where(lists[1][i] == j)[0][0] for i in range(n) for j in lists[0][i, 1 : k + 1]]
    return float(np.mean(ranks) / (n / 2))


@pytest.mark.parametrize("k", [1, 3])
def test_information_imbalance_agrees_with_dadapy_on_random_data(k):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((250, 6))
    y = np.concatenate([x[:, :2], rng.standard_normal((250, 3))], axis=1)  # shares two coordinates with x
    ours = information_imbalance_matrix([x, y], k)
    assert float(ours[0, 1]) == pytest.approx(dadapy_imbalance(x, y, k), abs=1e-12)
    assert float(ours[1, 0]) == pytest.approx(dadapy_imbalance(y, x, k), abs=1e-12)
    assert float(ours[0, 1]) == information_imbalance(x, y, k)


def platonic_mutual_knn(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    """minyoungg/platonic-rep (metrics.py): remove_outliers(q=0.95, exact=False), F.normalize, then
    mutual_knn with compute_nearest_neighbors ((f @ f.T).fill_diagonal_(-1e8), top k)."""
    def prepare(f):
        q = torch.quantile(f.abs().flatten(start_dim=1), 0.95, dim=1).mean()
        return torch.nn.functional.normalize(f.clamp(-q, q), dim=-1)

    def nearest(f):
        return (f @ f.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :k]

    knn_a, knn_b = nearest(prepare(a)), nearest(prepare(b))
    n = len(a)
    mask_a, mask_b = torch.zeros(n, n), torch.zeros(n, n)
    rows = torch.arange(n).unsqueeze(1)
    mask_a[rows, knn_a] = 1.0
    mask_b[rows, knn_b] = 1.0
    return float(((mask_a * mask_b).sum(dim=1) / k).mean())


def test_mutual_knn_agrees_with_platonic_rep():
    for k in (3, 10):  # the same neighbours: equal up to the reference's float32 mean
        assert mutual_knn(X, Y, k) == pytest.approx(platonic_mutual_knn(X, Y, k), abs=1e-6)


def test_matrices_match_the_pairwise_functions_and_take_numpy():
    reps = [X, Y.numpy(), torch.tanh(X)]
    knn, ii = mutual_knn_matrix(reps, k=5), information_imbalance_matrix(reps, k=2)
    for i in range(3):
        for j in range(3):
            assert float(knn[i, j]) == pytest.approx(mutual_knn(reps[i], reps[j], k=5))
            assert float(ii[i, j]) == pytest.approx(information_imbalance(reps[i], reps[j], k=2))
    assert linear_cka(X.numpy(), Y.numpy()) == linear_cka(X, Y)
    assert linear_cka(X.float(), Y.float()) == pytest.approx(linear_cka(X, Y), abs=1e-6)  # float64 inside
    # float32 features: centred in float64, their Gram product in float32
    assert torch.allclose(cka_matrix([X.float(), Y.float()], debiased=True), cka_matrix([X, Y], debiased=True),
                          atol=1e-6)


# ---- bad input: one line --------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: linear_cka(X, Y[:100]), "x has 300 rows, y has 100"),
    (lambda: mutual_knn(X, Y[:10]), "x has 300 rows, y has 10"),
    (lambda: mutual_knn(X[:10], Y[:10], k=10), "k must be an integer from 1 to 9"),
    (lambda: information_imbalance(X[:5], Y[:5], k=0), "k must be an integer from 1 to 4"),
    (lambda: linear_cka(X[:3], Y[:3], debiased=True), "at least 4 inputs"),  # Gram form (d > n)
    (lambda: linear_cka(X[:3, :1], Y[:3, :1], debiased=True), "at least 4 inputs"),  # feature form
    (lambda: linear_cka(torch.ones(5), Y[:5]), r"\(n, d\)"),
])
def test_bad_input_is_one_line(call, message):
    with pytest.raises(ConfigError, match=message) as info:
        call()
    assert "\n" not in str(info.value)
