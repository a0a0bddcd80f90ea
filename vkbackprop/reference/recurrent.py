"""Float64 NumPy reference RNN, LSTM and GRU (PyTorch semantics and parameter names) with
backpropagation through time, and Embedding.

Sequences are batch-major: x (B, T, F). Cells (`mode`): 'RNN_TANH', 'RNN_RELU', 'LSTM' (gates i, f,
g, o) and 'GRU' (gates r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))). States are
(num_layers, B, H) as in torch. `lengths` (B,) gives pack_padded_sequence semantics: steps at or past
a sequence's length leave the state unchanged and output 0, so the final state is the state after
its last valid step."""

import numpy as np


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def gate_count(mode: str) -> int:
    return {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}[mode]


def _cell_forward(mode, gi, gh, h, c):
    """(h', c', cache) from the input part gi = x W_ih^T + b_ih and hidden part gh = h W_hh^T + b_hh."""
    if mode == "RNN_TANH":
        h_new = np.tanh(gi + gh)
        return h_new, None, h_new
    if mode == "RNN_RELU":
        h_new = np.maximum(gi + gh, 0.0)
        return h_new, None, h_new
    if mode == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c_new = f * c + i * g
        return o * np.tanh(c_new), c_new, (i, f, g, o, c, c_new)
    (xr, xz, xn), (hr, hz, hn) = np.split(gi, 3, axis=1), np.split(gh, 3, axis=1)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1 - z) * n + z * h, None, (r, z, n, hn, h)


def _cell_backward(mode, cache, dh, dc):
    """(d input part, d hidden part, dL/dh through the cell's direct path, dL/dc_prev)."""
    if mode == "RNN_TANH":
        da = dh * (1 - cache ** 2)
        return da, da, 0.0, None
    if mode == "RNN_RELU":
        da = dh * (cache > 0)
        return da, da, 0.0, None
    if mode == "LSTM":
        i, f, g, o, c_prev, c_new = cache
        tc = np.tanh(c_new)
        dc = dc + dh * o * (1 - tc ** 2)
        da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                             dh * tc * o * (1 - o)], axis=1)
        return da, da, 0.0, dc * f
    r, z, n, hn, h = cache
    dan = dh * (1 - z) * (1 - n ** 2)
    dar = dan * hn * r * (1 - r)
    daz = dh * (h - n) * z * (1 - z)
    return np.concatenate([dar, daz, dan], axis=1), np.concatenate([dar, daz, dan * r], axis=1), dh * z, None


def _mask(lengths, batch, steps):
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths).reshape(batch)
    return np.arange(steps)[None, :] < lengths[:, None]          # (B, T): step t of sample b is valid


def _initial(state, num_layers, batch, hidden):
    return np.zeros((num_layers, batch, hidden)) if state is None else np.asarray(state, np.float64)


def _layer_params(params, layer, gates, hidden, bias):
    p = {k: np.asarray(params[f"{k}_l{layer}"], np.float64) for k in ("weight_ih", "weight_hh")}
    for k in ("bias_ih", "bias_hh"):
        p[k] = np.asarray(params[f"{k}_l{layer}"], np.float64) if bias else np.zeros(gates * hidden)
    return p


def recurrent_forward(mode, x, params, num_layers=1, h0=None, c0=None, lengths=None, bias=True):
    """(output (B, T, H), h_n (L, B, H), c_n (L, B, H) or None)."""
    out, h_n, c_n, _ = _forward(mode, x, params, num_layers, h0, c0, lengths, bias)
    return out, h_n, c_n


def _forward(mode, x, params, num_layers, h0, c0, lengths, bias):
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    hidden = np.shape(params["weight_hh_l0"])[1]
    mask = _mask(lengths, batch, steps)
    h0, c0 = _initial(h0, num_layers, batch, hidden), _initial(c0, num_layers, batch, hidden)
    h_n, c_n, caches = [], [], []
    for layer in range(num_layers):
        p = _layer_params(params, layer, gate_count(mode), hidden, bias)
        h, c, out, cache = h0[layer], c0[layer], np.zeros((batch, steps, hidden)), []
        for t in range(steps):
            gi = x[:, t] @ p["weight_ih"].T + p["bias_ih"]
            gh = h @ p["weight_hh"].T + p["bias_hh"]
            h_new, c_new, step_cache = _cell_forward(mode, gi, gh, h, c)
            valid = mask[:, t, None]
            cache.append((x[:, t], h, step_cache))
            h = np.where(valid, h_new, h)
            c = np.where(valid, c_new, c) if mode == "LSTM" else None
            out[:, t] = np.where(valid, h, 0.0)
        caches.append((p, cache))
        h_n.append(h)
        c_n.append(c)
        x = out
    return out, np.stack(h_n), (np.stack(c_n) if mode == "LSTM" else None), (caches, mask)


def recurrent_backward(mode, x, params, dout, num_layers=1, dh_n=None, dc_n=None, h0=None, c0=None,
                       lengths=None, bias=True):
    """Backpropagation through time for upstream gradients dout (B, T, H) and, optionally, of the
    final states dh_n, dc_n (L, B, H). Returns (dx, {parameter: gradient}, dh0, dc0 or None)."""
    _, _, _, (caches, mask) = _forward(mode, x, params, num_layers, h0, c0, lengths, bias)
    dout = np.asarray(dout, np.float64)
    batch, steps, hidden = dout.shape
    dh_n, dc_n = _initial(dh_n, num_layers, batch, hidden), _initial(dc_n, num_layers, batch, hidden)
    grads, dh0, dc0 = {}, [None] * num_layers, [None] * num_layers
    for layer in reversed(range(num_layers)):
        p, cache = caches[layer]
        g = {k: np.zeros_like(v) for k, v in p.items()}
        dh, dc = dh_n[layer], dc_n[layer]
        dx = np.zeros((batch, steps, p["weight_ih"].shape[1]))
        for t in reversed(range(steps)):
            valid = mask[:, t, None]
            x_t, h_prev, step_cache = cache[t]
            dh = dh + np.where(valid, dout[:, t], 0.0)
            dgi, dgh, direct, dc_prev = _cell_backward(mode, step_cache, dh, dc)
            dgi, dgh = np.where(valid, dgi, 0.0), np.where(valid, dgh, 0.0)
            g["weight_ih"] += dgi.T @ x_t
            g["weight_hh"] += dgh.T @ h_prev
            g["bias_ih"] += dgi.sum(0)
            g["bias_hh"] += dgh.sum(0)
            dx[:, t] = dgi @ p["weight_ih"]
            dh = np.where(valid, dgh @ p["weight_hh"] + direct, dh)
            dc = np.where(valid, dc_prev, dc) if mode == "LSTM" else dc
        dh0[layer], dc0[layer] = dh, dc
        names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if bias else ())
        grads.update({f"{k}_l{layer}": g[k] for k in names})
        dout = dx
    return dout, grads, np.stack(dh0), (np.stack(dc0) if mode == "LSTM" else None)


def embedding_forward(tokens, weight):
    """weight[tokens]: (B, T) integer tokens -> (B, T, D)."""
    return np.asarray(weight, np.float64)[np.asarray(tokens, np.int64)]


def embedding_backward(tokens, dy, num_embeddings, padding_idx=None):
    """dL/dweight (V, D): each token's rows of dy summed; the padding_idx row gets no gradient."""
    dy = np.asarray(dy, np.float64)
    tokens = np.asarray(tokens, np.int64).reshape(-1)
    dweight = np.zeros((num_embeddings, dy.shape[-1]))
    np.add.at(dweight, tokens, dy.reshape(len(tokens), -1))
    if padding_idx is not None:
        dweight[padding_idx] = 0.0
    return dweight
