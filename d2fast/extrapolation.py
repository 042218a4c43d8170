"""Score extrapolation (SPEC 6; Schmidt et al. 2025, arXiv 2506.09010).

Difficulty scores computed on a subset of the data (the *known* rows, typically 10-20 %)
are predicted for the remaining rows from embeddings, by a kNN regression over the known
rows or by a small graph convolutional network trained on the kNN graph of all rows.
``torch`` is imported only by ``method='gnn'``.
"""
from __future__ import annotations

import functools
import time
import warnings
from typing import Any

import numpy as np

from d2fast._validate import (check_choice, check_emb, check_ids, check_int, check_k,
                              check_labels, check_memory, check_real, check_scores)
from d2fast.graph import GRAPHS, METRICS, Graph, check_prebuilt, knn_graph
from d2fast.knn import KNN, float32_rows, search_database

METHODS = ("knn", "gnn")
WEIGHTS = ("distance", "uniform")


def extrapolate(emb: Any, known_idx: Any, known_scores: Any, method: str = "knn",
                k: int | None = None, *, metric: str | None = None, weights: str = "distance",
                temperature: float | None = None, knn: str = "auto",
                knn_params: dict | None = None, graph: str | Graph = "union",
                labels: Any = None, hidden: int = 64,
                layers: int = 2, epochs: int = 500, lr: float = 0.01,
                weight_decay: float = 5e-4, val_fraction: float = 0.2, patience: int = 50,
                seed: int = 0, device: Any = "cpu", return_info: bool = False,
                progress: bool = False) -> np.ndarray | tuple[np.ndarray, dict]:
    """Predict difficulty scores of all rows from the scores of a known subset.

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings of all rows (ndarray, memmap or torch tensor), real and finite; the kNN
        search works on float32 copies.
    known_idx : int array-like of shape (m,)
        Unique row ids in ``[0, n)`` whose scores are known, any order.
    known_scores : real array-like of shape (m,)
        Their scores, finite; ``known_scores[t]`` belongs to row ``known_idx[t]``.
    method : {'knn', 'gnn'}, default='knn'
        'knn': (weighted) mean of the scores of the ``k`` nearest known rows.
        'gnn': graph convolutional network on the kNN graph of all rows (needs torch).
    k : int, optional
        Default 10. 'knn': known neighbours per prediction, ``1 <= k <=`` the known rows
        not held out (all known rows when ``val_fraction == 0``). 'gnn': neighbours per
        node of the graph, ``1 <= k < n``; with a prebuilt ``graph``, leave it unset or
        give the graph's k.
    metric : {'euclidean', 'sqeuclidean', 'cosine'}, optional
        Distance of the kNN search (and of the 'knn' weights); default 'euclidean'.
    weights : {'distance', 'uniform'}, default='distance'
        'knn' only. 'uniform': plain mean. 'distance': weights
        ``exp(-(d - d_min) / temperature)`` with ``d_min`` the row's nearest distance, so
        the largest weight is exactly 1 (no underflow to 0 / 0 at any distance scale).
    temperature : float > 0, optional
        'knn' with distance weights. Default: the median of all neighbour distances of the
        rows being predicted (the scale of the data); the largest distance if that is 0,
        and 1 if all are 0 (all weights 1 then).
    knn : {'auto', 'exact', 'hnsw', 'ivf'}, default='auto'
        kNN search, as in :func:`d2fast.knn_graph` (exact up to 100k rows).
    knn_params : dict, optional
        Parameters of an approximate search (see :func:`d2fast.knn_graph`).
    graph : {'union', 'directed'} or Graph, default='union'
        As in :func:`d2fast.prune`: the kind of graph 'gnn' builds (it is made symmetric,
        so both kinds train the same network), or a prebuilt :class:`d2fast.Graph` of
        all rows (e.g. the one ``prune`` used) that 'gnn' uses instead of building one;
        ``k``, ``metric``, ``knn``, ``knn_params`` that contradict its ``meta`` are an
        error. 'knn' takes no prebuilt graph.
    labels : int array-like of shape (n,), optional
        'gnn' only: class labels of all rows, appended to the features as one-hot columns.
    hidden : int, default=64
        'gnn': width of the hidden graph convolutions.
    layers : int, default=2
        'gnn': number of graph convolutions, 2 or 3.
    epochs : int, default=500
        'gnn': maximum number of full-batch Adam steps.
    lr : float, default=0.01
        'gnn': Adam learning rate.
    weight_decay : float, default=5e-4
        'gnn': Adam L2 penalty.
    val_fraction : float, default=0.2
        Fraction of the known rows held out (seeded): 'gnn' selects the epoch with the
        lowest validation MSE on them (early stopping); 'knn' predicts them from the other
        known rows for the diagnostics. ``0 <= val_fraction < 1``; 'gnn' needs > 0.
        Unknown rows are never used for validation.
    patience : int, default=50
        'gnn': stop after this many epochs without a lower validation loss.
    seed : int, default=0
        Seeds the validation split and the network initialisation; the same seed gives a
        bit-identical result (on CPU, with the same torch thread count).
    device : str or torch.device, default='cpu'
        'gnn': where the network runs.
    return_info : bool, default=False
        Also return a dict of diagnostics.
    progress : bool, default=False
        tqdm progress bars (kNN search, training epochs).

    Returns
    -------
    scores : float64 of shape (n,)
        Predicted scores; the known rows hold exactly their ``known_scores``.
    info : dict, only with ``return_info=True``
        ``method``, ``n_known``, ``n_val``, ``val_idx`` (int64, the held-out known rows,
        sorted), ``val_pearson``, ``val_spearman`` (those rows predicted without their
        scores, against the subset's own known scores: no score of an unknown row is
        used or measured; NaN when ``n_val < 2``), ``time_s``;
        'knn': ``temperature`` (of the final prediction, None for uniform weights);
        'gnn': ``best_epoch`` (Adam steps of the selected parameters), ``epochs_run``,
        ``early_stopped`` (False when training ran all ``epochs``: the validation loss
        may still have been falling, try more epochs), ``train_loss``, ``val_loss`` (MSE
        of the standardised scores at ``best_epoch``).

    Raises
    ------
    TypeError, ValueError
        Naming the argument, for any invalid input.

    Notes
    -----
    GNN: ``layers`` graph convolutions ``H' = A_hat H W + b`` (ReLU between them, the last
    one of width 1) with ``A_hat = D^-1/2 (A + I) D^-1/2`` of the unweighted union kNN
    graph of all rows. Features: the embeddings standardised per column (over all rows),
    plus one-hot ``labels``. The target is standardised with the mean and standard
    deviation of the training part of the known rows and the prediction mapped back.
    The prediction returned is the one of the parameters with the lowest validation MSE.
    """
    t0 = time.perf_counter()
    X = check_emb(emb)
    n = X.shape[0]
    method = check_choice(method, "method", METHODS)
    known, known_vals = _check_known(known_idx, known_scores, n)
    given = not isinstance(graph, str)
    if given and method == "gnn":
        check_prebuilt(graph, n, k=k, metric=metric, knn=knn, knn_params=knn_params)
    elif not given:
        check_choice(graph, "graph", GRAPHS)
    k = 10 if k is None else k
    metric = check_choice("euclidean" if metric is None else metric, "metric", METRICS)
    weights = check_choice(weights, "weights", WEIGHTS)
    knn = check_choice(knn, "knn", KNN)
    if temperature is not None:
        temperature = check_real(temperature, "temperature")
        if temperature == 0:
            raise ValueError("temperature == 0.0, must be > 0")
    val_fraction = check_real(val_fraction, "val_fraction")
    if val_fraction >= 1:
        raise ValueError(f"val_fraction == {val_fraction}, must satisfy 0 <= val_fraction < 1")
    seed = check_int(seed, "seed", 0, 2**63 - 1, "a non-negative int64")
    train_pos, val_pos = _split(known.size, val_fraction, seed)
    if method == "knn":
        if labels is not None:
            raise ValueError("labels is used by method='gnn' only")
        if given:
            raise ValueError("a prebuilt graph is used by method='gnn' only")
        k = check_int(k, "k", 1, train_pos.size,
                      f"{train_pos.size} known rows not held out for validation"
                      if val_pos.size else f"{known.size} known rows")
        out, info = _knn_method(X, known, known_vals, val_pos, k, metric, weights, temperature,
                                knn, knn_params, progress)
    else:
        if val_pos.size == 0:
            raise ValueError(f"val_fraction == {val_fraction} holds out no known row; "
                             "method='gnn' needs some for model selection")
        if not given:
            k = check_k(k, n)
        one_hot = None if labels is None else _one_hot(labels, n)
        hidden = check_int(hidden, "hidden", 1, 2**20, "a layer width")
        layers = check_int(layers, "layers", 2, 3, "graph convolutions")
        epochs = check_int(epochs, "epochs", 1, 10**7, "Adam steps")
        patience = check_int(patience, "patience", 1, 10**7, "epochs")
        lr = check_real(lr, "lr")
        weight_decay = check_real(weight_decay, "weight_decay")
        device = _torch_device(device)
        if not given:
            graph = knn_graph(X, k, metric=metric, graph=graph, knn=knn,
                              knn_params=knn_params, progress=progress)
        check_memory(8.0 * n * (X.shape[1] + 4 * hidden) + 48.0 * (graph.nnz + n),
                     f"extrapolate(method='gnn', n={n}, hidden={hidden}, nnz={graph.nnz})")
        out, info = _gnn_method(X, one_hot, graph, known, known_vals, train_pos, val_pos,
                                hidden, layers, epochs, lr, weight_decay, patience, seed,
                                device, progress)
    out[known] = known_vals
    if not return_info:
        return out
    info = {"method": method, "n_known": int(known.size), "n_val": int(val_pos.size),
            "val_idx": known[val_pos], **info, "time_s": time.perf_counter() - t0}
    return out, info


def evaluate_extrapolation(pred: Any, true: Any, idx: Any = None) -> dict:
    """Pearson and Spearman correlation of predicted and true scores.

    Parameters
    ----------
    pred, true : real array-like of shape (n,)
        Finite scores.
    idx : int array-like of shape (m,), optional
        Rows to compare (e.g. the unknown rows); default all.

    Returns
    -------
    dict
        ``pearson`` and ``spearman`` (float; Spearman = Pearson of the ranks, ties get their
        average rank; NaN when fewer than 2 rows or either side is constant) and ``n`` (int).
    """
    pred = check_scores(pred, name="pred")
    true = check_scores(true, pred.size, name="true")
    if idx is not None:
        idx = check_ids(idx, pred.size, "idx")
        pred, true = pred[idx], true[idx]
    return {"pearson": _pearson(pred, true),
            "spearman": _pearson(_average_ranks(pred), _average_ranks(true)), "n": int(pred.size)}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two float64 vectors; NaN when n < 2 or either is constant."""
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(np.clip(a @ b / denom, -1.0, 1.0)) if denom > 0 else float("nan")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` (float64), tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]  # starts of runs of equal values
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def _check_known(known_idx: Any, known_scores: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Known row ids sorted ascending (int64) and their scores in the same order (float64)."""
    known = check_ids(known_idx, n, "known_idx")
    if known.size == 0:
        raise ValueError("known_idx is empty")
    vals = check_scores(known_scores, name="known_scores")
    if vals.size != known.size:
        raise ValueError(f"known_scores.shape == {vals.shape}, expected ({known.size},) "
                         "like known_idx")
    order = np.argsort(known, kind="stable")
    known, vals = known[order], vals[order]
    if (known[1:] == known[:-1]).any():
        raise ValueError(f"known_idx holds row {known[1:][known[1:] == known[:-1]][0]} twice")
    return known, vals


def _split(n_known: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions (into the sorted known rows) of the training and validation parts.

    ``round(val_fraction * n_known)`` rows (at least 1 when ``val_fraction > 0``) are held
    out, drawn by a local ``numpy.random.default_rng(seed)``.
    """
    n_val = 0 if val_fraction == 0 else max(1, int(round(val_fraction * n_known)))
    if n_val >= n_known:
        raise ValueError(f"val_fraction == {val_fraction} holds out all {n_known} known rows; "
                         "lower it or give more known rows")
    perm = np.random.default_rng(seed).permutation(n_known)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _knn_method(X, known, known_vals, val_pos, k, metric, weights, temperature, knn,
                knn_params, progress):
    """kNN regression of the unknown rows, and of the held-out known rows for diagnostics."""
    X32 = float32_rows(X, normalize=metric == "cosine")
    opts = dict(k=k, metric=metric, weights=weights, temperature=temperature, knn=knn,
                  knn_params=knn_params, progress=progress)
    out = np.zeros(X.shape[0], dtype=np.float64)
    info = {"val_pearson": np.nan, "val_spearman": np.nan, "temperature": None}
    if val_pos.size:
        train = np.delete(np.arange(known.size), val_pos)
        pred, _ = _knn_predict(X32, known[val_pos], known[train], known_vals[train], **opts)
        info.update(_val_correlations(pred, known_vals[val_pos]))
    unknown = np.setdiff1d(np.arange(X.shape[0]), known, assume_unique=True)
    if unknown.size:
        out[unknown], info["temperature"] = _knn_predict(X32, unknown, known, known_vals,
                                                         **opts)
    return out, info


def _knn_predict(X32, queries, database, db_scores, *, k, metric, weights, temperature, knn,
                 knn_params, progress):
    """Predictions for ``queries`` from the k nearest ``database`` rows, and the temperature."""
    ids, keys = search_database(X32, queries, database, k, cosine=metric == "cosine",
                                method=knn, params=knn_params, progress=progress)
    found = ids >= 0
    if not found[:, 0].all():
        raise ValueError(f"knn={knn!r} found no known neighbour for row "
                         f"{queries[~found[:, 0]][0]}; use knn='exact' or a wider search")
    dist = np.maximum(keys, 0.0)  # rounding can make a cosine key slightly negative
    if metric == "euclidean":
        np.sqrt(dist, out=dist)
    vals = db_scores[np.searchsorted(database, np.where(found, ids, database[0]))]
    if weights == "uniform":
        return (vals * found).sum(axis=1) / found.sum(axis=1), None
    if temperature is None:
        finite = dist[found]
        temperature = float(np.median(finite)) or float(finite.max()) or 1.0
    w = np.exp(-(dist - dist[:, :1]) / temperature) * found  # inf distances: weight 0
    return (w * vals).sum(axis=1) / w.sum(axis=1), temperature


def _val_correlations(pred: np.ndarray, true: np.ndarray) -> dict:
    res = evaluate_extrapolation(pred, true)
    return {"val_pearson": res["pearson"], "val_spearman": res["spearman"]}


def _one_hot(labels: Any, n: int) -> np.ndarray:
    """float32 (n, classes) one-hot of integer labels (any values)."""
    classes, codes = np.unique(check_labels(labels, n), return_inverse=True)
    out = np.zeros((n, classes.size), dtype=np.float32)
    out[np.arange(n), codes] = 1.0
    return out


def _torch_device(device: Any):
    """``device`` as a ``torch.device`` (ValueError naming it when it is not one)."""
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device ({exc})") from None


def _normalized_adjacency(graph: Graph, device):
    """``D^-1/2 (A + I) D^-1/2`` of the graph made symmetric (union of both edge
    directions), unweighted, as a float32 torch CSR tensor."""
    import torch

    n = graph.n
    rows = np.repeat(np.arange(n, dtype=np.int64), graph.degrees())
    cols = graph.indices.astype(np.int64)
    diag = np.arange(n, dtype=np.int64)
    keys = np.unique(np.concatenate([rows * n + cols, cols * n + rows, diag * (n + 1)]))
    rows, cols = np.divmod(keys, n)  # sorted by row, then column
    deg = np.bincount(rows, minlength=n).astype(np.float64)  # self loop included
    inv_sqrt_deg = 1.0 / np.sqrt(deg)
    vals = (inv_sqrt_deg[rows] * inv_sqrt_deg[cols]).astype(np.float32)
    crow = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(deg.astype(np.int64), out=crow[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(cols),
                                       torch.from_numpy(vals), size=(n, n),
                                       check_invariants=True).to(device)


@functools.cache
def _symmetric_propagation():
    """``f(adj, x) = adj @ x`` for a symmetric sparse ``adj``, with the gradient
    ``adj @ grad`` (torch's own transposes the CSR matrix, a sort, on every backward)."""
    import torch

    class SymmetricPropagation(torch.autograd.Function):
        @staticmethod
        def forward(ctx, adj, x):
            ctx.adj = adj
            return adj @ x

        @staticmethod
        def backward(ctx, grad):
            return None, ctx.adj @ grad

    return SymmetricPropagation.apply


def _gnn_method(X, one_hot, graph, known, known_vals, train_pos, val_pos, hidden, layers,
                epochs, lr, weight_decay, patience, seed, device, progress):
    """Train the GCN on the training part of the known rows; predict every row."""
    import torch
    from tqdm.auto import tqdm

    feats = np.asarray(X, dtype=np.float64)
    feats = (feats - feats.mean(axis=0)) / np.where((std := feats.std(axis=0)) > 0, std, 1.0)
    if one_hot is not None:
        feats = np.hstack([feats, one_hot])
    y_train = known_vals[train_pos]
    mean, scale = y_train.mean(), y_train.std() or 1.0
    target = (known_vals - mean) / scale
    t_train = torch.from_numpy(target[train_pos]).to(device, torch.float32)
    t_val = torch.from_numpy(target[val_pos]).to(device, torch.float32)
    train_rows = torch.from_numpy(known[train_pos]).to(device)
    val_rows = torch.from_numpy(known[val_pos]).to(device)
    adj = _normalized_adjacency(graph, device)
    with torch.random.fork_rng(devices=[]):  # the layers are initialised on the CPU
        torch.manual_seed(seed)
        # A_hat (X W) = (A_hat X) W: the first propagation is done once
        adj_feats = adj @ torch.from_numpy(feats.astype(np.float32)).to(device)
        widths = [feats.shape[1]] + [hidden] * (layers - 1) + [1]
        linears = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        linears.to(device)
    opt = torch.optim.Adam(linears.parameters(), lr=lr, weight_decay=weight_decay)
    propagate = _symmetric_propagation()
    best = {"val_loss": np.inf}
    for epoch in tqdm(range(epochs + 1), desc="GNN epochs", disable=not progress):
        h = linears[0](adj_feats)
        for layer in linears[1:]:
            h = propagate(adj, layer(torch.relu(h)))
        h = h[:, 0]
        loss = torch.mean((h[train_rows] - t_train) ** 2)
        val_loss = float(torch.mean((h[val_rows].detach() - t_val) ** 2))
        if val_loss < best["val_loss"]:
            best = {"val_loss": val_loss, "train_loss": float(loss.detach()), "best_epoch": epoch,
                    "pred": h.detach().cpu().numpy().astype(np.float64) * scale + mean}
        if epoch == epochs or epoch - best["best_epoch"] >= patience:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = best.pop("pred")
    info = {**_val_correlations(pred[known[val_pos]], known_vals[val_pos]), **best,
            "epochs_run": epoch, "early_stopped": epoch - best["best_epoch"] >= patience}
    return pred, info
