# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The math, checked numerically
#
# **In this chapter.** Can the gene modules of a bilinear MLP be read off its weights exactly? We check the three
# identities this rests on, live on small random models; all three hold to floating-point round-off.
#
# Everything we read out of a bilinear MLP {cite:p}`pearce2025bilinear` rests on three identities: the output
# is a quadratic form in the input, only the symmetric part of the interaction matrix matters, and the
# eigenpairs of that matrix can be computed exactly without ever forming it. The post this book reproduces
# {cite:p}`maher2025post` uses all three; this chapter states each one and checks it with `bilinear_core`
# (built on PyTorch, {cite:t}`paszke2019pytorch`). Every number in the text is computed below.
#
# ## Dimensions
#
# A cell is a vector $\mathbf{x} \in \mathbb{R}^g$ of $g$ gene expression values. The bilinear layer has two
# weight matrices $\mathbf{W}, \mathbf{V} \in \mathbb{R}^{h \times g}$ (rows $\mathbf{w}_h$, $\mathbf{v}_h$),
# and a linear head $\mathbf{P} \in \mathbb{R}^{t \times h}$ maps the $h$ hidden units to $t$ outputs:
#
# $$ \mathbf{y} = \mathbf{P}\,\big[(\mathbf{W}\mathbf{x}) \odot (\mathbf{V}\mathbf{x})\big]. $$
#
# This is a gated linear unit without its nonlinearity {cite:p}`shazeer2020glu`.
# `bilinear_core.BilinearMLP` implements exactly this (`head(left(x) * right(x))`, no biases by default).

# %% tags=["remove-cell"]
import bookkit

bookkit.setup(torch_threads=1)  # single-threaded timings: comparable across machines

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import bilinear_core as bc
from bilinear_core.interpret import interaction_matrices

# %%
torch.manual_seed(0)
g, h, t = 50, 8, 3
model = bc.BilinearMLP(g, h, t).double()
X = torch.randn(200, g, dtype=torch.float64)
W, V, P = (m.weight.detach() for m in (model.left, model.right, model.head))
with torch.no_grad():
    y = model(X)

# %% [markdown]
# ## Folding the head into a quadratic form
#
# For one output $a$, each hidden unit contributes the product of two scalars,
# $(\mathbf{w}_h^\top \mathbf{x})(\mathbf{v}_h^\top \mathbf{x}) = \mathbf{x}^\top \mathbf{w}_h \mathbf{v}_h^\top \mathbf{x}$,
# weighted by $P_{ah}$. Summing over $h$:
#
# $$ y_a = \sum_h P_{ah}\, \mathbf{x}^\top \mathbf{w}_h \mathbf{v}_h^\top \mathbf{x}
#        = \mathbf{x}^\top \mathbf{Q}_a \mathbf{x}, \qquad
#    \mathbf{Q}_a = \sum_h P_{ah}\, \mathbf{w}_h \mathbf{v}_h^\top = \mathbf{W}^\top \operatorname{diag}(\mathbf{p}_a)\, \mathbf{V}
#    \in \mathbb{R}^{g \times g}. $$
#
# The post writes this as "folding" $\mathbf{P}$ into $\mathbf{W}$ and $\mathbf{V}$ ($\mathbf{P}\mathbf{W} \to \mathbf{W}$)
# and then $\mathbf{Q}_a = \mathbf{w}_a \mathbf{v}_a^\top$. Read literally, that rank-one matrix is a different
# function: the head has to sit *between* the two factors, as $\operatorname{diag}(\mathbf{p}_a)$ does above.
# The check below compares both with the model's actual output on the random inputs `X` of the small model
# above ($g$ genes, $h$ hidden units, $t$ outputs as set there).

# %%
Q_raw = torch.einsum("ah,hi,hj->aij", P, W, V)  # Σ_h P[a,h] w_h v_hᵀ
err_quadratic = (torch.einsum("ni,aij,nj->na", X, Q_raw, X) - y).abs().max().item()
PW, PV = P @ W, P @ V  # the literal fold: rows w_a, v_a
y_literal = (X @ PW.T) * (X @ PV.T)
err_literal = ((y_literal - y).abs().max() / y.abs().max()).item()
print(f"max |xᵀ Q_a x − y_a|            = {err_quadratic:.2e}")
print(f"literal fold, max relative error = {err_literal:.2f}")

# %% tags=["remove-cell"]
from myst_nb import glue

glue("err_quadratic", err_quadratic, display=False)
glue("err_literal", err_literal, display=False)

# %% [markdown]
# The quadratic form reproduces the model to {glue:text}`err_quadratic:.1e` (floating-point round-off), while
# the literal rank-one fold misses by {glue:text}`err_literal:.0%` of the output scale. Everything in this book
# uses the exact $\mathbf{Q}_a$.
#
# ## Only the symmetric part matters
#
# Split $\mathbf{Q}_a$ into symmetric and antisymmetric parts,
# $\mathbf{Q}_a = \tfrac12(\mathbf{Q}_a + \mathbf{Q}_a^\top) + \tfrac12(\mathbf{Q}_a - \mathbf{Q}_a^\top)$.
# A scalar equals its transpose, so $\mathbf{x}^\top \mathbf{Q}_a \mathbf{x} = \mathbf{x}^\top \mathbf{Q}_a^\top \mathbf{x}$
# and the antisymmetric part contributes $\tfrac12(\mathbf{x}^\top \mathbf{Q}_a \mathbf{x} - \mathbf{x}^\top \mathbf{Q}_a^\top \mathbf{x}) = 0$.
# We therefore work with the symmetric $\mathbf{Q}_a \leftarrow \tfrac12(\mathbf{Q}_a + \mathbf{Q}_a^\top)$
# (`bilinear_core.interpret.interaction_matrices`), which has real eigenvalues and orthonormal eigenvectors.

# %%
antisym = 0.5 * (Q_raw - Q_raw.transpose(1, 2))
Q = interaction_matrices(model)  # the symmetric part, one (g, g) matrix per output
antisym_share = (antisym.norm() / Q_raw.norm()).item()
antisym_contrib = torch.einsum("ni,aij,nj->na", X, antisym, X).abs().max().item()
err_sym = (torch.einsum("ni,aij,nj->na", X, Q, X) - y).abs().max().item()
print(f"antisymmetric share of ‖Q‖ = {antisym_share:.0%}")
print(f"its largest contribution   = {antisym_contrib:.1e}")
print(f"max |xᵀ sym(Q_a) x − y_a|  = {err_sym:.1e}")

# %% tags=["remove-cell"]
glue("antisym_share", antisym_share, display=False)
glue("antisym_contrib", antisym_contrib, display=False)

# %% [markdown]
# The antisymmetric part is far from zero (it carries {glue:text}`antisym_share:.0%` of the Frobenius norm of the
# unsymmetrised matrices), yet its contribution to any output is {glue:text}`antisym_contrib:.1e`, and the
# symmetric part alone reproduces the model to the same round-off as the full $\mathbf{Q}_a$ (last line above).
#
# ## Eigenvectors are gene modules, scores are projections
#
# With the eigendecomposition $\mathbf{Q}_a = \sum_k \lambda_k \mathbf{u}_k \mathbf{u}_k^\top$ the output becomes a
# weighted sum of squared projections,
#
# $$ y_a = \sum_k \lambda_k\, (\mathbf{u}_k^\top \mathbf{x})^2 . $$
#
# Each eigenvector $\mathbf{u}_k$ is a gene module, $\mathbf{u}_k^\top \mathbf{x}$ is the cell's *module score*
# (`bilinear_core.module_scores`), and $\lambda_k$ says how much, and in which direction, that module moves the
# output. Positive eigenvalues push the output up for cells far from zero along $\mathbf{u}_k$ in either
# direction; negative ones push it down. We order eigenvalues descending, so module 0 is the strongest positive
# one (the post's convention). The sign of an eigenvector is arbitrary; `bilinear_core` fixes it so that the
# largest-magnitude loading is positive.

# %%
modules = bc.eigendecompose(model)
k = modules.eigenvalues.shape[1]  # 2h eigenpairs per output
X_np, y_np = X.numpy(), y.numpy()
scores = np.stack([bc.module_scores(X_np, modules, a, n_modules=k) for a in range(t)])
recon = np.einsum("ank,ak->na", scores.astype(np.float64) ** 2, modules.eigenvalues)
err_expansion = float(np.abs(recon - y_np).max() / np.abs(y_np).max())
print(f"max relative |Σ_k λ_k (u_kᵀx)² − y_a| = {err_expansion:.1e}")

# %% tags=["remove-cell"]
glue("err_expansion", err_expansion, display=False)

# %% [markdown]
# Summing $\lambda_k (\mathbf{u}_k^\top \mathbf{x})^2$ over modules reproduces the outputs to a relative
# {glue:text}`err_expansion:.1e` (module scores are computed in single precision, as for real data).
#
# ## Exact eigenpairs without the $g \times g$ matrix
#
# For $g$ = 10,000 genes each $\mathbf{Q}_a$ has $10^8$ entries and a dense eigendecomposition takes tens of
# seconds per output. But $\mathbf{Q}_a$ has rank at most $2h$: stack $\mathbf{B} = [\mathbf{W}^\top\ \mathbf{V}^\top]
# \in \mathbb{R}^{g \times 2h}$, then
#
# $$ \mathbf{Q}_a = \mathbf{B}\, \mathbf{M}_a \mathbf{B}^\top, \qquad
#    \mathbf{M}_a = \tfrac12 \begin{pmatrix} 0 & \operatorname{diag}(\mathbf{p}_a) \\ \operatorname{diag}(\mathbf{p}_a) & 0 \end{pmatrix}. $$
#
# With the thin QR factorisation $\mathbf{B} = \mathbf{U}\mathbf{R}$ ($\mathbf{U}$ has orthonormal columns), every
# non-zero eigenpair of $\mathbf{Q}_a$ is $(\lambda, \mathbf{U}\mathbf{z})$ for an eigenpair $(\lambda, \mathbf{z})$ of
# the small symmetric matrix $\mathbf{R}\mathbf{M}_a\mathbf{R}^\top \in \mathbb{R}^{2h \times 2h}$; the remaining
# $g - 2h$ eigenvalues are exactly zero. The QR does not depend on the output, so one factorisation serves all
# $t$ outputs. This is exact, not an approximation: below we compare it with the dense `torch.linalg.eigh` of
# every $\mathbf{Q}_a$.

# %%
dense = bc.eigendecompose(model, dense=True)
full = torch.linalg.eigvalsh(Q).numpy()  # all g eigenvalues per output, ascending
scale = np.abs(full).max(axis=1, keepdims=True)
eig_rel_diff = float((np.abs(modules.eigenvalues - dense.eigenvalues) / scale).max())
cos = np.einsum("agk,agk->ak", modules.eigenvectors, dense.eigenvectors)
left_out = np.sort(np.abs(full), axis=1)[:, : g - k]  # the g − 2h smallest |λ|
print(f"rank of Q_0: {np.linalg.matrix_rank(Q[0].numpy())} (2h = {2 * h})")
print(f"eigenvalues: max difference {eig_rel_diff:.1e} relative to the largest")
print(f"eigenvectors: max 1 − |cos| = {(1 - np.abs(cos)).max():.1e}")
print(f"the {g - k} left-out eigenvalues: largest {left_out.max() / scale.max():.1e}")

# %% tags=["remove-output"]
dense_0 = full[0][::-1]  # descending, as modules are ordered
n_pos = int((modules.values(0) > 0).sum())
at = np.r_[np.arange(n_pos), np.arange(g - (k - n_pos), g)] + 1  # the 2h non-zero ones
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.plot(np.arange(1, g + 1), dense_0, "o", color="0.7", label=f"dense: all {g}")
ax.plot(at, modules.values(0), "x", color="C3", label=f"low-rank: {k}")
ax.axhline(0, color="0.4", lw=0.8)
ax.set(xlabel="eigenvalue index (descending)", ylabel="eigenvalue of $Q_0$")
ax.legend(frameon=False)

# %% tags=["remove-cell"]
glue("eig_rel_diff", eig_rel_diff, display=False)
glue("n_zero", g - k, display=False)
bookkit.figure("fig-math-spectrum", fig)

# %% [markdown]
# ```{glue:figure} fig-math-spectrum
# :name: fig-math-spectrum
#
# The spectrum of $\mathbf{Q}_0$ of the small model, computed both ways. Grey dots: all $g$ eigenvalues of
# the dense matrix, in descending order; red crosses: the $2h$ eigenvalues of the low-rank path, placed at the
# same positions. The crosses sit on the dots, and the {glue:text}`n_zero:d` dense eigenvalues between them
# lie on the zero line.
# ```
#
# On the small model $\mathbf{Q}_0$ has rank $2h$ (first line above). The low-rank eigenvalues agree with the
# dense ones to {glue:text}`eig_rel_diff:.1e` relative to the largest, the eigenvectors to the same round-off,
# and the $g - 2h$ eigenvalues the low-rank path leaves out are zero in the dense spectrum (last line, relative
# to the largest eigenvalue; {numref}`fig-math-spectrum`).
#
# At the size of the offline pancreas data ($g$ = 2,000, $h$ = 128, 8 cell types) the difference in cost is
# already large. The benchmarks (`make bench`) measure it up to 20,000 genes.

# %%
torch.manual_seed(0)
big = bc.BilinearMLP(2_000, 128, 8)
start = time.perf_counter()
low_big = bc.eigendecompose(big)
low_seconds = time.perf_counter() - start
start = time.perf_counter()
Q_big = interaction_matrices(big, outputs=[0])  # one dense (g, g) matrix
dense_values = torch.linalg.eigvalsh(Q_big)[0].flip(0).numpy()
dense_seconds = time.perf_counter() - start
print(f"low-rank, all 8 outputs: {low_seconds:.3f} s")
print(f"dense, one output:       {dense_seconds:.3f} s")

# %%
top = dense_values[np.argsort(-np.abs(dense_values))[: 2 * 128]]  # the 2h non-zero ones
big_diff = np.abs(low_big.values(0) - np.sort(top)[::-1]).max() / np.abs(top).max()
print(f"eigenvalues of output 0 differ by {big_diff:.1e} relative to the largest")

# %% tags=["remove-cell"]
glue("low_seconds", low_seconds, display=False)
glue("dense_seconds", dense_seconds, display=False)
glue("big_rel_diff", float(big_diff), display=False)

# %% [markdown]
# All eight outputs take {glue:text}`low_seconds:.2f` s with the low-rank path, against
# {glue:text}`dense_seconds:.2f` s for a *single* dense eigendecomposition, and the eigenvalues agree to
# {glue:text}`big_rel_diff:.1e` relative. (Timings are taken while the book builds, on whatever machine runs it.)
#
# ## From modules to biology
#
# The chapters apply the same pipeline to every output:
#
# 1. train the model; compute every output's eigenpairs with `bilinear_core.eigendecompose`;
# 2. check that module scores track the target (class, frequency coordinate);
# 3. rank genes by loading per sign of a module: the post's top 1 % per sign, with a floor of 50 genes so that
#    small gene panels still give enrichment power (`bilinear_core.top_genes`);
# 4. run over-representation analysis of each sign against local gene-set libraries (Enrichr's hypergeometric
#    test {cite:p}`chen2013enrichr`, Benjamini–Hochberg adjusted $p \le 0.05$ {cite:p}`benjamini1995`, top 15
#    terms; `bilinear_core.enrichment`).
#
# Signs of a module are two poles of one axis, not activators and repressors, and weight-based associations are
# statistical, not causal.
#
# ```{admonition} Key takeaways
# :class: tip
#
# The output of a bilinear layer is exactly a quadratic form $\mathbf{x}^\top \mathbf{Q}_a \mathbf{x}$
# in the input: it reproduces the model to {glue:text}`err_quadratic:.1e`, provided the head sits between the
# two weight matrices (read literally, the post's rank-one fold misses by {glue:text}`err_literal:.0%`).
# Only the symmetric part of $\mathbf{Q}_a$ acts on the output, so its eigenvectors (the gene modules) are
# orthonormal and its eigenvalues real. Those eigenpairs come exactly from a $2h \times 2h$ problem: they match
# the dense decomposition to {glue:text}`eig_rel_diff:.1e`, and on a 2,000-gene model all eight outputs take
# {glue:text}`low_seconds:.2f` s against {glue:text}`dense_seconds:.2f` s for one output done densely.
# ```
