"""The Deep Compression table: per layer and per stage (P, P+Q, P+Q+H) sizes of a model file.

Sizes are read from real model files (``sparse_shared`` tensors): P+Q is the file written with
the ``fixed`` coder (``ceil(log2 k)``-bit weight indices, ``b``-bit gaps or a bitmap), P+Q+H
the file written with an entropy coder (``ans`` or ``huffman``). P (pruning alone) counts each
survivor as a float32 plus its ``fixed``-coded position, every other byte as in the P+Q file.
"""

from __future__ import annotations

from weightshare.codecs.container import Manifest


def _layers(manifest: Manifest) -> dict[str, dict]:
    out = {}
    for entry in manifest.tensors:
        if entry.codec == "sparse_shared":
            sizes = {c.kind: c.length for c in entry.chunks}
            out[entry.name] = {
                "n": entry.size,
                "nnz": entry.params["nnz"],
                "k_eff": entry.params["k_eff"],
                "coding": entry.params["positions"],
                "gap_bits": entry.params.get("gap_bits"),
                "codebook_bytes": sizes["codebook"],
                "position_bytes": sizes["positions"],
                "index_bytes": sizes["indices"],
            }
    return out


def _ratio(dense: int, stored: int) -> float:
    return dense / stored if stored else float("inf")


def stage_table(pq: Manifest, pqh: Manifest, dense_bytes: int) -> dict:
    """Per-layer and total rows of the paper's table from the P+Q and P+Q+H files.

    Args:
        pq: manifest of the file coded with ``fixed``; pqh: with the entropy coder (same
            tensors, same shared values).
        dense_bytes: bytes of the fp32 model (every tensor of the state dict).

    Returns:
        ``{"layers": [row, ...], "total": row}``. A layer row: ``weights``, ``kept``
        (fraction), ``weight_bits`` / ``index_bits`` per survivor for P+Q and P+Q+H (index =
        position), ``positions`` (``gaps`` with its bit width, or ``bitmap``), and ``ratio_p``,
        ``ratio_pq``, ``ratio_pqh`` (fp32 bytes of the tensor / its stored bytes, codebook
        included). The total row's ratios are fp32 model bytes / whole file bytes.
    """
    a, b = _layers(pq), _layers(pqh)
    rows = []
    totals = {"weights": 0, "kept": 0, "p": 0, "pq": 0, "pqh": 0, "wb": [0, 0], "ib": [0, 0]}
    for name, fa in a.items():
        fb = b[name]
        n, nnz = fa["n"], fa["nnz"]
        p_bytes = 4 * nnz + fa["position_bytes"]
        pq_bytes = fa["codebook_bytes"] + fa["position_bytes"] + fa["index_bytes"]
        pqh_bytes = fb["codebook_bytes"] + fb["position_bytes"] + fb["index_bytes"]
        rows.append(
            {
                "layer": name,
                "weights": n,
                "kept": nnz / n,
                "k_eff": fa["k_eff"],
                "weight_bits_pq": 8 * fa["index_bytes"] / nnz,
                "weight_bits_pqh": 8 * fb["index_bytes"] / nnz,
                "index_bits_pq": 8 * fa["position_bytes"] / nnz,
                "index_bits_pqh": 8 * fb["position_bytes"] / nnz,
                "positions_pq": fa["coding"]
                + (f" {fa['gap_bits']} bits" if fa["gap_bits"] else ""),
                "positions_pqh": fb["coding"]
                + (f" {fb['gap_bits']} bits" if fb["gap_bits"] else ""),
                "ratio_p": _ratio(4 * n, p_bytes),
                "ratio_pq": _ratio(4 * n, pq_bytes),
                "ratio_pqh": _ratio(4 * n, pqh_bytes),
            }
        )
        totals["weights"] += n
        totals["kept"] += nnz
        totals["p"] += p_bytes
        totals["pq"] += pq_bytes
        totals["pqh"] += pqh_bytes
        totals["wb"][0] += fa["index_bytes"]
        totals["wb"][1] += fb["index_bytes"]
        totals["ib"][0] += fa["position_bytes"]
        totals["ib"][1] += fb["position_bytes"]
    rest = pq.file_bytes - totals["pq"]  # raw tensors, manifest, header of the P+Q file
    kept = max(1, totals["kept"])
    total = {
        "layer": "total",
        "weights": totals["weights"],
        "kept": totals["kept"] / max(1, totals["weights"]),
        "weight_bits_pq": 8 * totals["wb"][0] / kept,
        "weight_bits_pqh": 8 * totals["wb"][1] / kept,
        "index_bits_pq": 8 * totals["ib"][0] / kept,
        "index_bits_pqh": 8 * totals["ib"][1] / kept,
        "file_bytes_p": rest + totals["p"],
        "file_bytes_pq": pq.file_bytes,
        "file_bytes_pqh": pqh.file_bytes,
        "dense_bytes": dense_bytes,
        "ratio_p": _ratio(dense_bytes, rest + totals["p"]),
        "ratio_pq": _ratio(dense_bytes, pq.file_bytes),
        "ratio_pqh": _ratio(dense_bytes, pqh.file_bytes),
    }
    return {"layers": rows, "total": total}
