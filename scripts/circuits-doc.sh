#!/usr/bin/env bash
# Writes docs/circuits.md: what every `hcore circuits` measure is, then what each gives on one demo run, with
# the command that produced it. Nothing in the page is typed by hand after the definitions, so no number in it
# can go stale: rerun this script on a demo folder to regenerate it.
#
#   scripts/circuits-doc.sh demo-out            # a finished `hcore demo` folder
#   CONTROLS=40 scripts/circuits-doc.sh demo-out
set -euo pipefail
cd "$(dirname "$0")/.."
demo="${1:?usage: scripts/circuits-doc.sh DEMO_FOLDER}"
for f in model eval.json subnetworks.hcs activations.safetensors study.json; do
    [ -e "$demo/$f" ] || { echo "circuits-doc: $demo/$f is missing: give a finished hcore demo folder" >&2; exit 2; }
done
controls="${CONTROLS:-20}"
per="${PER_SUBCASE:-25}"
hcore=.build/release/hcore
[ -x "$hcore" ] || swift build -c release --product hcore 2>&1 | tail -1
out=docs/circuits.md
tmp="$out.tmp.$$"
trap 'rm -f "$tmp" "$tmp.err"' EXIT

run() {  # the command as a reader would type it, then its output
    local shown="${*//$demo/demo}"
    shown="${shown//$hcore/hcore}"
    printf '```\n$ %s\n' "$shown" >> "$tmp"
    "$@" 2> "$tmp.err" >> "$tmp" || { cat "$tmp.err" >&2; echo "circuits-doc: '$shown' failed" >&2; exit 1; }
    printf '```\n\n' >> "$tmp"
}

cat > "$tmp" << 'EOF'
# Circuits: what `hcore circuits` measures, and what it finds on the demo

The paper's second claim: every subnetwork that matches the full model keeps a *heuristic core* of units,
and later heads that read from the core are what the well-generalising subnetworks keep. This page defines
each measure hcore reports for that claim with its null, then shows what each gives on one run of the demo —
every result below was written by `scripts/circuits-doc.sh` from the run it names, with the command beside
it. Code: `Sources/Circuits/`; tests: `Tests/CircuitsTests/`. Units are spelled as the reference spells them:
`a4.h3` is head 3 of layer 4, `a2.mlp` layer 2's MLP. Every random draw takes a seed.

## Definitions

**Matching subnetworks** (`Circuits/Matching.swift`). A subnetwork matches the full model when its in-domain
accuracy exceeds the full model's minus 3 points — the reference's effective-size rule, one-sided and strict
(`accuracy > full − margin`). Fewer than 3 matching subnetworks is a refusal: an intersection of one or two
masks says nothing. The values come from an eval document with the full model's row (`--eval`), or from the
store's metadata with the full model's value given (`--id-reference`). `circuits core`, `readers`,
`positions`, `compose`, the report and the demo all choose their subnetworks and core by this one function
(`heuristicCore`); a test checks that the demo's core equals `circuits core`'s on a store where earlier
rules disagreed.

**The core and its nulls** (`Circuits/CoreEvidence.swift`). The core: units kept by every matching subnetwork
(or by `--fraction` of them). Heads and MLPs are tested apart, since a few always-kept MLPs would otherwise
carry the p-value of a core of heads: for heads, each permutation shuffles, inside every matching subnetwork,
which heads of each layer are kept (same count per layer) and recounts the heads kept in common; for MLPs,
which layers keep theirs. p = (1 + #{null ≥ observed}) / (1 + permutations); tested against closed forms.
**Split halves**: the seeds are split at random into two halves, a core is found in each, and the mean Jaccard
index of the two halves' head cores is set against the same for permuted masks. **Presence vs OOD**: each
unit's presence (0/1) against the subnetworks' mean accuracy on the paper's four plotted HANS subcases,
sparsity partialled out, permutation p (Freedman–Lane), Benjamini–Hochberg q.

**Who reads the core: path patching** (`Circuits/PathPatching.swift`, `PatchReport.swift`; Wang et al. 2022,
Goldowsky-Dill et al. 2023).
- *Senders*: the core's heads and MLPs. *Corruption* (`--corrupt`): their mean activation (the paper's
  ablation, the default); their output on a paired input of the other label and the same length; or
  `overlap-removed`: the same premise with the hypothesis of another pair of the same subcase (same template,
  same syntax, same length) none of whose content words occurs in the premise — the overlap the heuristic
  reads is gone. Paired partners of the same heuristic share its full word overlap, so they do not remove it.
- *Run P*: the clean pair, senders corrupted, every other head frozen at its clean context, MLPs that are not
  senders recomputed, every LayerNorm keeping its clean per-token scale (by default; `--recompute-layernorm`
  otherwise) so the paths add up linearly through it.
- *Receivers*: every head of a later layer through its query, key or value input (that input from run P, the
  other two clean, everything downstream recomputed), and the logits.
- *Measure*: Δ of the entailment log-odds LD = z_entailment − logsumexp(other logits), per pair; its mean with
  a standard error; its share of the senders' *total effect* (corrupted with nothing else frozen, same
  LayerNorm rule); the plain clean-vs-corrupted total effect beside it.
- *Controls*: 20 or more sender sets like the core's — each core head replaced by a non-core head of its
  layer, each core MLP by a non-core MLP (when there are too few, the MLPs stay and the controls test the
  heads alone, said in the output). Per receiver a two-sided p: Student's t prediction test of the core's Δ
  against the controls' Δs (controls − 1 degrees of freedom; it assumes the controls' Δs are normal), and the
  rank p (1 + #{|Δ_control| ≥ |Δ|}) / (1 + controls), exact but never below 1/(1 + controls). Benjamini–Hochberg
  q across receivers, of the t p.
- *Pairs*: a seeded sample of `--per-subcase` pairs of each of the paper's four plotted HANS subcases (SO-Swap,
  Prep, Embed-If, Embed-Verb), from the HANS evaluation set compiled into hcore.
- *Inside the subnetworks* (`--inside`, `Circuits/ReadersInside.swift`): the same patching inside each
  matching subnetwork (its pruned units at their mean); per receiver, Pearson r over subnetworks of its Δ with
  their OOD measure, a permutation p, and the partial r with in-domain accuracy and HANS entailed accuracy
  regressed out of both (the verdict's label-lean controls), Benjamini–Hochberg q.
- *Tests*: receivers, MLP senders, subnetworks and both total effects against an independent BERT in Double
  patched the long way; the t tail against its closed forms; Benjamini–Hochberg against its definition;
  permutation p against full enumeration; the counterfactual's partners checked for length, subcase and overlap.

**Where and how directly** (`circuits positions`, `Circuits/DirectEffects.swift`). By position: one unit's
output on one part of the pair ([CLS], premise, hypothesis, the [SEP]s) replaced by its corrupted value,
everything after recomputed. Direct logit attribution: the unit's output at [CLS] minus its mean, carried along
the residual stream alone through every later LayerNorm at its clean scale, then through the pooler
linearised at tanh (tanh' = 1 − tanh²) and the classifier, dotted with ∂LD/∂logits. Both against the Double
twin. **Attention** (`circuits attention --summary`): per head, the weight a token puts on the same word piece
in the other sentence (beside what uniform attention would put there), on the [SEP]s and on [CLS].

**Composition** (`circuits compose`, `Circuits/Composition.swift`). Q, K and V composition scores (Elhage et
al. 2021), ‖W_OV^A W_QK^B‖_F / (‖W_OV^A‖_F ‖W_QK^B‖_F) and likewise. `--fold-layernorm` folds the skip path in
exactly: post-LN BERT passes 2(j − i) LayerNorms between a head of layer i and one of layer j, each centring,
dividing by its own σ and multiplying by γ; the σ are per-token scalars that cancel in the normalised score
and β adds a constant no head writes, so A's W_OV becomes W_OV^A·C·diag(γ₁)···C·diag(γ_m) (tested against
D × D matrices built from the checkpoint). Each score is placed among the anti-causal scores of its layer
pair; and each receiver's strongest composition with the core is set against its *own* null: the same maximum
over sender sets drawn outside the core from the core's layers (1,000 draws), p and Benjamini–Hochberg q.

**Unit ablation** (`circuits ablate`): each head and MLP removed in turn (the reference's
`--try-removing-edges`), Δloss and Δaccuracy per dataset.

EOF

# The run's settings, its clone's absolute path left out.
root="$(cd "$demo/.." && pwd)/"
printf '## On the demo\n\nThe run: `%s` (settings in its `study.json`: `%s`).\n\n' \
    "hcore demo --out demo" "$(tr -d '\n ' < "$demo/study.json" | sed "s|$root||g")" >> "$tmp"
printf '### The core\n' >> "$tmp"
run "$hcore" circuits core --store "$demo/subnetworks.hcs" --eval "$demo/eval.json"
printf '### Who reads it (full model, %s pairs per plotted subcase, %s controls)\n' "$per" "$controls" >> "$tmp"
run "$hcore" circuits readers --model "$demo/model" --store "$demo/subnetworks.hcs" --eval "$demo/eval.json" \
    --activations "$demo/activations.safetensors" --per-subcase "$per" --controls "$controls" --inside
printf '### The same with the overlap removed instead of the mean\n' >> "$tmp"
run "$hcore" circuits readers --model "$demo/model" --store "$demo/subnetworks.hcs" --eval "$demo/eval.json" \
    --activations "$demo/activations.safetensors" --per-subcase "$per" --controls "$controls" \
    --corrupt overlap-removed
printf '### Where in the pair the core acts, and how directly\n' >> "$tmp"
run "$hcore" circuits positions --model "$demo/model" --store "$demo/subnetworks.hcs" --eval "$demo/eval.json" \
    --activations "$demo/activations.safetensors" --per-subcase "$per"
printf '### What the core heads attend to\n' >> "$tmp"
run "$hcore" circuits attention --summary --model "$demo/model" --store "$demo/subnetworks.hcs" \
    --eval "$demo/eval.json" --per-subcase "$per"
mv "$tmp" "$out"
rm -f "$tmp.err"
trap - EXIT
echo "wrote $out from $demo" >&2
