// hcore's side of BENCHMARKS.md. Each subcommand prints one JSON object per measurement.
//   hcore-bench peak                      FMA peak probe (1 and 2 threads)
//   hcore-bench gemm                      GEMM GFLOP/s on the BERT shapes, % of the probed peak
//   hcore-bench bert-base [--batch 32 --length 128]   random-weight bert-base, sequences/s (+ subnetworks)
//   hcore-bench hans MODEL_DIR [--pairs 2048]          HANS pairs/s, length-sorted batches of 32
//   hcore-bench prune-step MODEL_DIR [--batch 32 --length 128] [--gates TRACE [--ramp 0,25,50,75]]   one L0
//       pruning step (gates sampled, full-model KL target, masked forward with dropout, backward to log α) at a gate
//       state: the paper's start, or a run's log α at points of its sparsity ramp
//   hcore-bench prune-estimate [MODEL_DIR] --gates TRACE [--targets 50] [--seeds 12]   a study's wall time from
//       steps measured along a run's ramp (bert-base with random weights without MODEL_DIR)
// Benchmarks/run.sh runs these and Benchmarks/peers.py (PyTorch, ONNX Runtime) in one go.
import Checkpoint
import Circuits
import Eval
import Foundation
import Kernels
import Model
import Prune
import Store
import Synchronization
import Tokenizer

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
func out(_ fields: [(String, JSONValue)]) { print(JSONValue.object(fields).compact) }
/// The value after `name` on the command line.
func stringArg(_ name: String) -> String? {
    guard let i = CommandLine.arguments.firstIndex(of: name), i + 1 < CommandLine.arguments.count else { return nil }
    return CommandLine.arguments[i + 1]
}

/// The integer after `name` on the command line, else `def`.
func arg(_ name: String, _ def: Int) -> Int { stringArg(name).flatMap { Int($0) } ?? def }

func benchGemm(m: Int, n: Int, k: Int, pool: ThreadPool, reps: Int = arg("--reps", 7)) -> Double {
    let x = allocateFloats(m * k)
    let y = allocateFloats(m * n)
    defer {
        x.deallocate()
        y.deallocate()
    }
    for i in 0..<(m * k) { x[i] = Float(i % 7) * 0.01 }
    let w = (0..<(n * k)).map { Float($0 % 5) * 0.01 }
    let b = [Float](repeating: 0, count: n)
    let p = PackedLinear(weight: w, bias: b, n: n, k: k)
    gemm(x, rows: m, lda: k, p, out: y, ldc: n, epilogue: .bias, pool: pool)
    var times: [Double] = []
    for _ in 0..<reps {
        let t = now()
        gemm(x, rows: m, lda: k, p, out: y, ldc: n, epilogue: .bias, pool: pool)
        times.append(now() - t)
    }
    return 2 * Double(m * n * k) / (CommandLine.arguments.contains("--min") ? times.min()! : times.sorted()[reps / 2])
        / 1e9  // median (or best)
}

/// A bert-base-sized BertForSequenceClassification with random weights (seeded), as an HF folder.
func makeRandomBertBase(folder: String) throws {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let c = BertConfig(
        hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072,
        labels: ["entailment", "neutral", "contradiction"])
    let cfg = try JSONSerialization.data(withJSONObject: c.jsonObject(), options: [.prettyPrinted, .sortedKeys])
    _ = FileManager.default.createFile(atPath: folder + "/config.json", contents: cfg)
    var state: UInt64 = 42
    func rand(_ n: Int, _ scale: Float) -> [Float] {
        (0..<n).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) / Float(1 << 24) - 0.5) * 2 * scale
        }
    }
    var w = SafetensorsWriter()
    let config = BertConfig(
        vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072,
        maxPositionEmbeddings: 512, labels: ["a", "b", "c"])
    for t in BertTensorNames.all(config) {
        let n = t.shape.reduce(1, *)
        if t.name.contains("LayerNorm") {
            w.add(t.name, shape: t.shape, [Float](repeating: t.name.hasSuffix(".weight") ? 1 : 0, count: n))
        } else {
            let scale: Float = t.name.contains("embeddings") ? 0.05 : t.name.hasSuffix(".bias") ? 0.02 : 0.036
            w.add(t.name, shape: t.shape, rand(n, scale))
        }
    }
    try w.write(to: folder + "/model.safetensors")
}

/// Random binary masks pruning `headFraction` of heads and `mlpFraction` of MLPs (seeded).
func randomMasks(layers: Int, heads: Int, headFraction: Double, mlpFraction: Double, seed: UInt64) -> MaskValues {
    var state = seed
    func shuffled(_ n: Int) -> [Int] {
        var a = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            a.swapAt(i, Int(state >> 33) % (i + 1))
        }
        return a
    }
    var m = MaskValues.ones(layers: layers, heads: heads)
    for u in shuffled(layers * heads).prefix(Int((Double(layers * heads) * headFraction).rounded())) {
        m.heads[u / heads][u % heads] = 0
    }
    for l in shuffled(layers).prefix(Int((Double(layers) * mlpFraction).rounded())) { m.mlps[l] = 0 }
    return m
}

/// Batches spread over `workers` threads, each running whole batches on its own (serial) kernels.
func timeForwardBatchParallel(_ model: BertModel, batches: [TokenBatch], workers: Int, reps: Int) throws -> Double {
    var best = Double.infinity
    for _ in 0..<reps {
        let next = Atomic<Int>(0)
        let t = now()
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= batches.count { break }
                _ = try? model.forward(batches[i], pool: .serial)
            }
        }
        best = min(best, now() - t)
    }
    return best
}

func timeForward(_ model: BertModel, batches: [TokenBatch], plan: ExecutionPlan?, reps: Int) throws -> Double {
    _ = try model.forward(batches[0], plan: plan)  // warm-up
    var best = Double.infinity
    for _ in 0..<reps {
        let t = now()
        for b in batches { _ = try model.forward(b, plan: plan) }
        best = min(best, now() - t)
    }
    return best
}

let command = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "gemm"
// The workloads read the repository's fixtures and data by relative path.
if ![
    "peak", "gemm", "gemm-ab", "out-norm", "bert-base", "attention", "store-open", "store-adds", "store-updates",
    "fuzz-seeds",
]
.contains(command)
    && !FileManager.default.fileExists(atPath: "data/hans/heuristics_evaluation_set.txt.zst")
{
    FileHandle.standardError.write(
        Data(
            "hcore-bench: data/hans/heuristics_evaluation_set.txt.zst not found: run it from the repository root (cd to the folder with Package.swift)\n"
                .utf8))
    exit(2)
}
/// `hcore-bench peak`
func benchPeak() throws {
    for t in [1, 2] {
        out([("bench", "fma_peak"), ("threads", .int(t)), ("gflops", .float(fmaPeakGFLOPs(threads: t)))])
    }
}

/// `hcore-bench gemm`
func benchGemm() throws {
    // Each shape is measured between two FMA probes, and its % of peak is taken against the higher of
    // them: the machine's speed drifts, so a probe minutes away would say little about this shape's run.
    var peak2 = fmaPeakGFLOPs(threads: 2, iterations: 20_000_000)
    out([("bench", "fma_peak"), ("threads", 2), ("gflops", .float(peak2))])
    var shapes =
        CommandLine.arguments.contains("--small")
        ? [(576, 1152, 384), (576, 384, 384), (576, 1536, 384), (576, 384, 1536)]
        : [(4096, 2304, 768), (4096, 768, 768), (4096, 3072, 768), (4096, 768, 3072), (128, 768, 768)]
    // --shape MxNxK measures one shape only; --threads T (default 2) for tuning on one core.
    if let shape = stringArg("--shape") {
        let d = shape.split(separator: "x").compactMap { Int($0) }
        if d.count == 3 { shapes = [(d[0], d[1], d[2])] }
    }
    let threads = arg("--threads", 2)
    for (m, n, k) in shapes {
        let g = benchGemm(m: m, n: n, k: k, pool: .sized(threads))
        let after = fmaPeakGFLOPs(threads: 2, iterations: 20_000_000)
        let local = max(peak2, after)
        out([("bench", "fma_peak"), ("threads", 2), ("gflops", .float(after))])
        out([
            ("bench", "gemm"), ("shape", .string("\(m)x\(n)x\(k)")), ("threads", .int(threads)), ("gflops", .float(g)),
            ("adjacent_peak", .float(local)), ("pct_of_peak", .float(100 * g / local)),
        ])
        peak2 = after
    }
}

/// `hcore-bench attention`
func benchAttention() throws {
    // The attention kernel alone on bert-base's shape (default 32 sequences × 128 tokens, 12 heads of 64),
    // Q/K/V random: GFLOP/s of its two products (4·T²·H·d per sequence), best of --reps.
    let B = arg("--batch", 32)
    let T = arg("--length", 128)
    let H = arg("--heads", 12)
    let d = arg("--head-dim", 64)
    let ld = 3 * H * d
    let N = B * T
    let qkv = allocateFloats(N * ld)
    let ctx = allocateFloats(N * H * d)
    var state: UInt64 = 3
    for i in 0..<(N * ld) {
        state = state &* 6_364_136_223_846_793_005 &+ 1
        qkv[i] = Float(Int(state >> 41) % 2001 - 1000) / 1000
    }
    let offsets = (0...B).map { $0 * T }
    // --train: as a pruning step runs it — probabilities kept for the backward, inverted dropout (p = 0.1) on
    // them — then the backward from a random dctx (8·T²·H·d FLOPs per sequence), timed apart.
    let train = CommandLine.arguments.contains("--train")
    let probs = train ? allocateFloats(B * H * T * T) : nil
    // --no-dropout: probabilities kept, no dropout (what the dropout multipliers cost).
    let dropBytes =
        train && !CommandLine.arguments.contains("--no-dropout")
        ? UnsafeMutablePointer<UInt8>.allocate(capacity: DropoutBits.byteCount(B * H * T * T)) : nil
    let dctx = train ? allocateFloats(N * H * d) : nil
    let dqkv = train ? allocateFloats(N * ld) : nil
    if let dropBytes {
        SplitMix64(seed: 5).fillDropoutBits(
            UnsafeMutableRawPointer(dropBytes), bytes: 0..<((B * H * T * T + 7) / 8), p: 0.1)
    }
    let drop = dropBytes.map { DropoutBits(bytes: UnsafeRawPointer($0), scale: 1 / 0.9) }
    if let dctx { for i in 0..<(N * H * d) { dctx[i] = qkv[i] } }
    var (best, bestBackward) = (Double.infinity, Double.infinity)
    for _ in 0..<arg("--reps", 20) {
        let t = now()
        attention(
            qkv: qkv, ldqkv: ld, heads: H, headDim: d, offsets: offsets, ctx: ctx, ldctx: H * d, probs: probs,
            dropout: drop)
        best = min(best, now() - t)
        if let probs, let dctx, let dqkv {
            let t = now()
            attentionBackward(
                qkv: qkv, ldqkv: ld, probs: probs, dctx: dctx, ldctx: H * d, heads: H, headDim: d, offsets: offsets,
                dqkv: dqkv, probDropout: drop)
            bestBackward = min(bestBackward, now() - t)
        }
    }
    out([
        ("bench", "attention"), ("batch", .int(B)), ("length", .int(T)), ("heads", .int(H)), ("head_dim", .int(d)),
        ("train", .bool(train)), ("seconds", .float(best)),
        ("gflops", .float(4 * Double(B * T * T * H * d) / best / 1e9)),
    ])
    if train {
        out([
            ("bench", "attention_backward"), ("batch", .int(B)), ("length", .int(T)), ("heads", .int(H)),
            ("head_dim", .int(d)), ("seconds", .float(bestBackward)),
            ("gflops", .float(8 * Double(B * T * T * H * d) / bestBackward / 1e9)),
        ])
    }
}

/// `hcore-bench out-norm`
func benchOutNorm() throws {
    // W_O's product over `--heads` kept heads (K = 64·heads) for `--rows` rows, then LayerNorm₁ and, for a pruned
    // MLP, LayerNorm₂, in alternating rounds. separate: the product, then two LayerNorm sweeps; fused: LayerNorm₁
    // in the product's epilogue, in place; chained: both there, C scratch (as the model runs a pruned-MLP layer);
    // product and residual: the product alone and with the residual added, for what the LayerNorms cost; steps: a
    // chain's arithmetic alone.
    let (m, n, k) = (arg("--rows", 4096), 768, 64 * arg("--heads", 1))
    let x = allocateFloats(m * k)
    let g = allocateFloats(m * n)
    let residual = allocateFloats(m * n)
    let keep = allocateFloats(m * n)
    for i in 0..<(m * k) { x[i] = Float(i % 7) * 0.01 }
    for i in 0..<(m * n) { keep[i] = Float(i % 11) * 0.1 }
    let w = PackedLinear(
        weight: (0..<(n * k)).map { Float($0 % 5) * 0.01 }, bias: [Float](repeating: 0.1, count: n), n: n, k: k)
    // The LayerNorm's rows at addresses a chain's steps may hold.
    let (gamma, beta, constant) = (allocateFloats(n), allocateFloats(n), allocateFloats(n))
    gamma.update(repeating: 1, count: n)
    beta.update(repeating: 0, count: n)
    constant.update(repeating: 0.2, count: n)
    let variants = ["separate", "fused", "chained", "product", "residual", "steps"]
    var times = [[Double]](repeating: [], count: variants.count)
    for round in 0..<arg("--rounds", 20) {
        for i in (round % 2 == 0 ? Array(variants.indices) : variants.indices.reversed()) {
            residual.update(from: keep, count: m * n)  // the layer's input, rewritten in place by the chain
            let t = now()
            let first = LayerNormStep(adding: nil, gamma: gamma, beta: beta, eps: 1e-12)
            switch variants[i] {
            case "separate":
                gemm(x, rows: m, lda: k, w, out: g, ldc: n, epilogue: .biasResidual(residual, ld: n))
                layerNorm(g, g, rows: m, count: n, gamma: gamma, beta: beta, eps: 1e-12)
                layerNorm(g, residual, rows: m, count: n, adding: constant, gamma: gamma, beta: beta, eps: 1e-12)
            case "fused":
                let chain = LayerNormChain([first], out: g, ld: n)
                gemm(x, rows: m, lda: k, w, out: g, ldc: n, epilogue: .biasResidualNormalized(residual, ld: n, chain))
            case "steps":
                // Eight chained LayerNorms on 512 rows in cache, ten times: the chain's own arithmetic.
                let s = LayerNormStep(adding: constant, gamma: gamma, beta: beta, eps: 1e-12)
                let chain = LayerNormChain([LayerNormStep](repeating: s, count: 8), out: g, ld: n)
                for _ in 0..<10 { layerNorm(g, rows: 512, count: n, chain: chain) }
            case "product":
                gemm(x, rows: m, lda: k, w, out: g, ldc: n, epilogue: .bias)
            case "residual":
                gemm(x, rows: m, lda: k, w, out: g, ldc: n, epilogue: .biasResidual(residual, ld: n))
            default:
                let second = LayerNormStep(adding: constant, gamma: gamma, beta: beta, eps: 1e-12)
                let chain = LayerNormChain([first, second], out: residual, ld: n)
                gemm(x, rows: m, lda: k, w, out: g, ldc: n, epilogue: .biasResidualNormalized(residual, ld: n, chain))
            }
            times[i].append(now() - t)
        }
    }
    for (i, v) in variants.enumerated() {
        let s = times[i].sorted()
        out([
            ("bench", "out-norm"), ("rows", .int(m)), ("k", .int(k)), ("variant", .string(v)),
            ("best_ms", .float(s[0] * 1000)), ("median_ms", .float(s[s.count / 2] * 1000)),
        ])
    }
}

/// `hcore-bench gemm-ab`
func benchGemmAb() throws {
    // Tuning: GEMM variants measured in interleaved rounds on one shape, so that the machine's drift hits
    // every variant alike; prints each variant's best and median GFLOP/s. A variant is
    // threads:kc:panelsPerTile:mc (e.g. --variants 2:192:4:72,2:128:4:72,1:192:4:72).
    var dims = [576, 1536, 384]
    if let shape = stringArg("--shape") {
        dims = shape.split(separator: "x").compactMap { Int($0) }
    }
    var variants = [[1, 192, 4, 72], [2, 192, 4, 72]]
    if let list = stringArg("--variants") {
        variants = list.split(separator: ",").map {
            $0.split(separator: ":").compactMap { Int($0) }
        }
    }
    let (m, n, k) = (dims[0], dims[1], dims[2])
    // An optional 5th field pads the input's row stride (lda = k + pad): strides that are multiples of 4 KB
    // put every row of a micro-kernel strip in the same L1 set.
    let maxPad = variants.map { $0.count > 4 ? $0[4] : 0 }.max() ?? 0
    let x = allocateFloats(m * (k + maxPad))
    let y = allocateFloats(m * n)
    for i in 0..<(m * (k + maxPad)) { x[i] = Float(i % 7) * 0.01 }
    let w = PackedLinear(
        weight: (0..<(n * k)).map { Float($0 % 5) * 0.01 }, bias: [Float](repeating: 0, count: n), n: n, k: k)
    var times = [[Double]](repeating: [], count: variants.count)
    // --cold: evict the weights from L2 (and most of L3's share) before each call, as in a model whose
    // layers' weights do not all fit in cache.
    let cold = CommandLine.arguments.contains("--cold")
    let flush = allocateFloats(cold ? 16 << 20 : 1)
    var sink: Float = 0
    for _ in 0..<arg("--rounds", 30) {
        for (i, v) in variants.enumerated() {
            if cold {
                for j in stride(from: 0, to: 16 << 20, by: 16) {
                    flush[j] += 1
                    sink += flush[j]
                }
            }
            let t = now()
            gemm(
                x, rows: m, lda: k + (v.count > 4 ? v[4] : 0), w, out: y, ldc: n,
                epilogue: CommandLine.arguments.contains("--gelu") ? .biasGELU : .bias,
                pool: .sized(v[0]), kc: v[1], tilePanels: v[2], mc: v[3])
            times[i].append(now() - t)
        }
    }
    if sink == -1 { print(sink) }
    for (i, v) in variants.enumerated() {
        let s = times[i].sorted()
        out([
            ("bench", "gemm-ab"), ("shape", .string("\(m)x\(n)x\(k)")),
            ("variant", .string(v.map(String.init).joined(separator: ":"))),
            ("best_gflops", .float(2 * Double(m * n * k) / s[0] / 1e9)),
            ("median_gflops", .float(2 * Double(m * n * k) / s[s.count / 2] / 1e9)),
        ])
    }
}

/// `hcore-bench bert-base`
func benchBertBase() throws {
    let folder = NSTemporaryDirectory() + "hcore-bert-base-random"
    if !FileManager.default.fileExists(atPath: folder + "/model.safetensors") { try makeRandomBertBase(folder: folder) }
    let model = try BertModel.load(folder: folder)
    let B = arg("--batch", 32)
    let T = arg("--length", 128)
    let reps = arg("--reps", 3)
    var state: UInt64 = 7
    let batch = TokenBatch(
        (0..<B).map { _ in
            Encoding(
                inputIds: [101]
                    + (0..<(T - 2)).map { _ in
                        state = state &* 6_364_136_223_846_793_005 &+ 1
                        return Int32(1000 + Int(state >> 40) % 20000)
                    } + [102],
                tokenTypeIds: [Int32](repeating: 0, count: T))
        })
    let full = model.fullPlan
    // FLOPs of the work done (the last layer for [CLS] rows unless HCORE_ALL_ROWS=1); "gflops" below uses them too.
    let fullFlops = full.flops(
        model: model, sequenceLengths: [Int](repeating: T, count: B), clsOnlyLastLayer: defaultLastLayer == .firstQuery)
    let standardFlops = full.flops(model: model, sequenceLengths: [Int](repeating: T, count: B))
    let zeros = MeanActivations(
        avgHead: [Float](repeating: 0.01, count: 12 * 12 * 64), avgMLP: [Float](repeating: 0.01, count: 12 * 768))
    // --full-only: the full model alone (for a peak-memory reading with /usr/bin/time -v).
    let specs =
        CommandLine.arguments.contains("--full-only")
        ? [] : [("heads50_mlps50", 0.5, 0.5), ("heads50", 0.5, 0.0), ("all90", 0.9, 0.9)]
    var subnetworks: [(name: String, masks: MaskValues, plan: ExecutionPlan, compileMs: Double)] = []
    for (name, hf, mf) in specs {
        let masks = randomMasks(layers: 12, heads: 12, headFraction: hf, mlpFraction: mf, seed: 1)
        let t0 = now()
        let plan = try ExecutionPlan.compile(model: model, masks: masks, ablation: .mean(zeros))
        subnetworks.append((name, masks, plan, (now() - t0) * 1000))
    }
    // The full model and the subnetworks take turns, `reps` rounds, best time each: a speed-up compares
    // passes made minutes, not hours, apart on this drifting machine.
    StageTimer.shared.reset()
    var fullTime = Double.infinity
    var subTimes = [Double](repeating: .infinity, count: subnetworks.count)
    _ = try model.forward(batch)
    for _ in 0..<reps {
        StageTimer.shared.reset()
        fullTime = min(fullTime, try timeForward(model, batches: [batch], plan: nil, reps: 1))
        let profiling = StageTimer.shared.enabled
        if profiling { print("full:\n" + StageTimer.shared.report) }
        for (i, sub) in subnetworks.enumerated() {
            StageTimer.shared.reset()
            subTimes[i] = min(subTimes[i], try timeForward(model, batches: [batch], plan: sub.plan, reps: 1))
            if profiling { print("\(sub.name) (with its warm-up pass):\n" + StageTimer.shared.report) }
        }
    }
    out([
        ("bench", "bert_base"), ("subnetwork", "full"), ("batch", .int(B)), ("length", .int(T)),
        ("seconds", .float(fullTime)),
        ("sequences_per_s", .float(Double(B) / fullTime)), ("gflops", .float(fullFlops / fullTime / 1e9)),
        ("gflops_standard_count", .float(standardFlops / fullTime / 1e9)),
    ])
    for (i, sub) in subnetworks.enumerated() {
        let t = subTimes[i]
        let flops = sub.plan.flops(
            model: model, sequenceLengths: [Int](repeating: T, count: B),
            clsOnlyLastLayer: defaultLastLayer == .firstQuery)
        out([
            ("bench", "bert_base"), ("subnetwork", .string(sub.name)), ("seconds", .float(t)),
            ("sequences_per_s", .float(Double(B) / t)),
            ("full_seconds", .float(fullTime)), ("speedup", .float(fullTime / t)),
            ("flop_ratio", .float(fullFlops / flops)),
            ("speedup_over_flop_ratio", .float(fullTime / t / (fullFlops / flops))),
            ("plan_compile_ms", .float(sub.compileMs)), ("mask", .string(sub.masks.json.compact)),
        ])
    }
}

/// `hcore-bench hans`
func benchHans() throws {
    let folder =
        CommandLine.arguments.count > 2 && !CommandLine.arguments[2].hasPrefix("--")
        ? CommandLine.arguments[2] : "Tests/Fixtures/models/minilm-nli"
    let pairs = arg("--pairs", 2048)
    let reps = arg("--reps", 3)
    let model = try BertModel.load(folder: folder)
    let tok = try BertTokenizer.load(folder: folder)
    let text = String(decoding: try readDataFile("data/hans/heuristics_evaluation_set.txt.zst"), as: UTF8.self)
    let rows = text.split(separator: "\n").dropFirst().prefix(pairs).map {
        $0.split(separator: "\t", omittingEmptySubsequences: false)
    }
    let t0 = now()
    let enc = try rows.map { try tok.encode(String($0[5]), pair: String($0[6]), maxLength: 128) }
    let tokenize = now() - t0
    let order = enc.indices.sorted { (enc[$0].count, $0) < (enc[$1].count, $1) }
    let batches = stride(from: 0, to: order.count, by: 32).map {
        TokenBatch(order[$0..<min(order.count, $0 + 32)].map { enc[$0] })
    }
    StageTimer.shared.reset()
    if CommandLine.arguments.contains("--batch-parallel-ab") {
        for _ in 0..<reps {
            let a = try timeForward(model, batches: batches, plan: nil, reps: 1)
            let b = try timeForwardBatchParallel(model, batches: batches, workers: 2, reps: 1)
            print("intra-op \(Double(enc.count) / a) pairs/s, batch-parallel \(Double(enc.count) / b) pairs/s")
        }
    }
    if CommandLine.arguments.contains("--repeats-ab") {
        // Layer 0 with and without computing repeated (token, position, type) rows once: passes alternate
        // (order swapped every round), best and median of each.
        var times: [[Double]] = [[], []]
        for round in 0..<reps {
            for skip in round % 2 == 0 ? [false, true] : [true, false] {
                let t = now()
                for b in batches {
                    let x = allocateFloats(b.tokenCount * model.hidden)
                    try model.embeddings(b, into: x)
                    try model.runLayers(
                        x, batch: b, range: 0..<model.layerCount, lastLayer: defaultLastLayer,
                        xHoldsEmbeddings: skip)
                    _ = try model.logits(fromHidden: x, batch: b)
                    x.deallocate()
                }
                times[skip ? 0 : 1].append(now() - t)
            }
        }
        let unique = batches.reduce(0) { $0 + $1.distinctEmbeddingRows().unique.count }
        let best = times.map { $0.min()! }
        let median = times.map { $0.sorted()[$0.count / 2] }
        out([
            ("bench", "hans_layer0_repeats"), ("rows", .int(enc.reduce(0) { $0 + $1.count })),
            ("distinct_rows", .int(unique)),
            ("pairs_per_s_computed_once", .float(Double(enc.count) / best[0])),
            ("pairs_per_s_every_row", .float(Double(enc.count) / best[1])),
            ("median_pairs_per_s_computed_once", .float(Double(enc.count) / median[0])),
            ("median_pairs_per_s_every_row", .float(Double(enc.count) / median[1])),
            ("paired_wins_computed_once", .int(zip(times[0], times[1]).filter { $0 < $1 }.count)),
            ("rounds", .int(reps)),
        ])
    }
    let t = try timeForward(model, batches: batches, plan: nil, reps: reps)
    out([
        ("bench", "hans"), ("pairs", .int(enc.count)), ("tokens", .int(enc.reduce(0) { $0 + $1.count })),
        ("tokenize_s", .float(tokenize)),
        ("forward_s", .float(t)), ("pairs_per_s", .float(Double(enc.count) / t)),
    ])
    if StageTimer.shared.enabled { print(StageTimer.shared.report) }
}

/// `hcore-bench eval-many`
func benchEvalMany() throws {
    // 100 random subnetworks (half the heads, half the MLPs) on HANS pairs: actual time vs the sum of
    // FLOP-proportional times of the full model; then a store whose subnetworks share layers 0–2 in
    // groups of 10, with and without prefix sharing.
    let folder = "Tests/Fixtures/models/minilm-nli"
    let model = try BertModel.load(folder: folder)
    let tok = try BertTokenizer.load(folder: folder)
    let ds = try Dataset.load("data/hans/heuristics_evaluation_set.txt.zst", limit: arg("--pairs", 512))
    let prepared = try PreparedDataset(dataset: ds, model: model, tokenizer: tok, options: PredictionOptions())
    let acts = MeanActivations(
        avgHead: [Float](repeating: 0.01, count: 6 * 12 * 32), avgMLP: [Float](repeating: 0.01, count: 6 * 384))
    let lengths = prepared.encodings.map(\.count)
    let n = arg("--subnetworks", 100)
    func time(_ targets: [EvalTarget], sharing: Bool) throws -> (Double, EvalStats) {
        var stats = EvalStats()
        let t = now()
        _ = try evaluateTargets(
            model: model, datasets: [prepared], targets: targets, ablation: .mean(acts), batchSize: 32,
            keepLogits: false, prefixSharing: sharing, stats: &stats)
        return (now() - t, stats)
    }
    let full = [EvalTarget(name: "full", index: 0, sparsity: 0, seed: .null, masks: nil)]
    _ = try time(full, sharing: false)
    let fullTime = (0..<3).map { _ in (try? time(full, sharing: false).0) ?? .infinity }.min()!
    let fullFlops = model.flops(masks: nil, sequenceLengths: lengths, clsOnlyLastLayer: defaultLastLayer == .firstQuery)
    let random = (0..<n).map { i in
        EvalTarget(
            name: "r\(i)", index: i, sparsity: 0.5, seed: .int(i),
            masks: randomMasks(layers: 6, heads: 12, headFraction: 0.5, mlpFraction: 0.5, seed: UInt64(i + 1)))
    }
    // In chunks of 10 subnetworks, each followed by a timing of the full model: a chunk's FLOP-proportional
    // time uses the full model's speed of that moment (this machine drifts over the minute the run takes).
    var predicted = 0.0
    var actual = 0.0
    for chunk in stride(from: 0, to: random.count, by: 10) {
        let part = Array(random[chunk..<min(random.count, chunk + 10)])
        actual += try time(part, sharing: false).0
        let fullNow = try time(full, sharing: false).0
        predicted += part.reduce(0.0) {
            $0 + fullNow
                * model.flops(
                    masks: $1.masks, sequenceLengths: lengths, clsOnlyLastLayer: defaultLastLayer == .firstQuery)
                / fullFlops
        }
    }
    out([
        ("bench", "eval_many"), ("pairs", .int(ds.count)), ("subnetworks", .int(n)), ("full_model_s", .float(fullTime)),
        ("flop_proportional_sum_s", .float(predicted)), ("actual_s", .float(actual)),
        ("actual_over_predicted", .float(actual / predicted)),
    ])
    // Shared early layers: 10 groups × 10 subnetworks; members of a group agree on layers 0–2.
    let grouped = (0..<n).map { i -> EvalTarget in
        let base = randomMasks(layers: 6, heads: 12, headFraction: 0.5, mlpFraction: 0.5, seed: UInt64(1000 + i / 10))
        var m = randomMasks(layers: 6, heads: 12, headFraction: 0.5, mlpFraction: 0.5, seed: UInt64(5000 + i))
        for l in 0..<3 {
            m.heads[l] = base.heads[l]
            m.mlps[l] = base.mlps[l]
        }
        return EvalTarget(name: "g\(i)", index: i, sparsity: 0.5, seed: .int(i), masks: m)
    }
    let (without, _) = try time(grouped, sharing: false)
    let (with, stats) = try time(grouped, sharing: true)
    out([
        ("bench", "prefix_sharing"), ("pairs", .int(ds.count)), ("subnetworks", .int(n)),
        ("without_s", .float(without)), ("with_s", .float(with)),
        ("saving", .float(1 - with / without)), ("layer_runs", .int(stats.layerRuns)),
        ("layer_runs_unshared", .int(stats.layerRunsUnshared)),
    ])
}

/// Gate states from a run's trace (`hcore prune --trace`): log α after the step at each given percent of the
/// sparsity ramp (the ramp ends at the first step whose target is the run's final target).
func gateStates(trace path: String, percents: [Int]) throws -> [(label: String, step: Int, logAlpha: [Double])] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let records = try text.split(separator: "\n").map {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
    }
    let final = records.last!["target_sparsity"] as! Double
    let rampEnd = records.firstIndex { ($0["target_sparsity"] as! Double) >= final - 1e-12 }!
    return percents.map { p in
        let step = Int((Double(p) / 100 * Double(rampEnd)).rounded())
        return ("\(p)% of ramp", step, (records[step]["log_alpha"] as! [Any]).map { ($0 as! NSNumber).doubleValue })
    }
}

/// B sequences of T random tokens (two segments) and the model's mean activations over them: a pruning bench's batch.
func pruneBenchBatch(_ model: BertModel, sequences B: Int, length T: Int) throws -> (TokenBatch, MeanActivations) {
    var state: UInt64 = 11
    let batch = TokenBatch(
        (0..<B).map { _ in
            Encoding(
                inputIds: [101]
                    + (0..<(T - 2)).map { _ in
                        state = state &* 6_364_136_223_846_793_005 &+ 1
                        return Int32(1000 + Int(state >> 40) % 20000)
                    } + [102],
                tokenTypeIds: (0..<T).map { $0 < T / 2 ? 0 : 1 })
        })
    let acc = ActivationAccumulator(model: model)
    try model.encode(batch, observer: acc).deallocate()
    return (batch, acc.result(fingerprint: model.fingerprint))
}

/// One pruning step (one micro-batch) at gate state `logAlpha`, `reps` times after one untimed step (which builds
/// the transposed weights), each with fresh gate noise from one fixed stream: median and best seconds, and the
/// mean number of gates sampled at exactly 0.
func timePruneStep(
    _ model: BertModel, _ batch: TokenBatch, _ acts: MeanActivations, logAlpha: [Double], fullModel: [Double]?,
    skip: Bool, reps: Int
) throws -> (median: Double, best: Double, closed: Double) {
    var noise = SplitMix64(seed: 99)
    var times: [Double] = []
    var closed = 0
    for r in 0..<(reps + 1) {
        let u = (0..<logAlpha.count).map { _ in noise.uniform() }
        let t0 = now()
        _ = try pruneObjective(
            model: model, batch: batch, logAlpha: logAlpha, u: u, lambdas: [0.1, 0.1], target: 0.3, activations: acts,
            dropout: model.config.hiddenDropoutProb, attentionDropout: model.config.attentionProbsDropoutProb,
            dropoutSeed: UInt64(r), fullProbabilities: fullModel, skipClosedGates: skip)
        if r > 0 {
            times.append(now() - t0)
            closed +=
                logAlpha.indices.filter { HardConcrete.sample(logAlpha: Float(logAlpha[$0]), u: Float(u[$0])) == 0 }
                .count
        }
    }
    return (times.sorted()[times.count / 2], times.min()!, Double(closed) / Double(reps))
}

/// `hcore-bench prune-step [MODEL_DIR] [--gates TRACE [--ramp 0,25,50,75]]`: one pruning step (B×T random
/// tokens) at each gate state — log α 10 ± 0.01 (the paper's start), or the trace's at those points of its ramp —
/// as the reference runs it (the full model's forward in the step), as `hcore prune` runs it (the full model's
/// distribution cached), and cached without skipping closed gates (the arithmetic of a step that computes every
/// unit). Median of `--reps` steps, each with fresh gate noise (the same noise for every engine).
func benchPruneStep() throws {
    let folder =
        CommandLine.arguments.count > 2 && !CommandLine.arguments[2].hasPrefix("--")
        ? CommandLine.arguments[2] : "Tests/Fixtures/models/minilm-nli"
    let model = try BertModel.load(folder: folder)
    let (B, T) = (arg("--batch", 32), arg("--length", 128))
    let (batch, acts) = try pruneBenchBatch(model, sequences: B, length: T)
    let U = model.layerCount * model.headCount + model.layerCount
    var rng = SplitMix64(seed: 1)
    var states = [(label: "initial", step: 0, logAlpha: (0..<U).map { _ in 10 + 0.01 * rng.normal() })]
    if let trace = stringArg("--gates") {
        let percents = (stringArg("--ramp") ?? "0,25,50,75").split(separator: ",").map { Int($0)! }
        states = try gateStates(trace: trace, percents: percents)
        precondition(states.allSatisfy { $0.logAlpha.count == U }, "the trace's log α does not fit \(folder)")
    }
    let cached = try model.fullModelProbabilities(batch).flatMap { $0 }
    // --engines a,b runs only those (e.g. hcore-cached-full-model under a profiler).
    let only = stringArg("--engines").map { Set($0.split(separator: ",").map(String.init)) }
    let engines: [(String, [Double]?, Bool)] = [
        ("hcore", nil, true), ("hcore-cached-full-model", cached, true),
        ("hcore-cached-unskipped", cached, false),
    ].filter { only?.contains($0.0) ?? true }
    for st in states {
        for (label, target, skip) in engines {
            StageTimer.shared.reset()
            let t = try timePruneStep(
                model, batch, acts, logAlpha: st.logAlpha, fullModel: target, skip: skip, reps: arg("--reps", 5))
            let expected = 1 - HardConcrete.expectedKept(st.logAlpha.map(Float.init)) / Double(U)
            out([
                ("bench", "prune_step"), ("engine", .string(label)), ("gates", .string(st.label)),
                ("trace_step", .int(st.step)), ("expected_sparsity", .float(expected)),
                ("closed_units_mean", .float(t.closed)), ("batch", .int(B)), ("length", .int(T)),
                ("seconds", .float(t.median)), ("best_seconds", .float(t.best)),
            ])
            if StageTimer.shared.enabled { print(StageTimer.shared.report) }
        }
    }
}

/// `hcore-bench prune-estimate [MODEL_DIR] --gates TRACE [--targets 50] [--seeds 12] [--accumulation 4]`: a pruning
/// study's wall time projected from measured steps. The step (`--batch` × `--length`, full model cached, as
/// `hcore prune` runs) is timed at the trace's gate states at every 10% of its sparsity ramp; a model with other
/// units than the trace's takes, per head and per MLP, the log α of a random head or MLP of the trace at that point
/// (seeded): gates are assumed to close as they did in the traced run. A run of the reference's recipe for target
/// sp% (scripts/pruning/prune-all-*.sh: 6500 + 50·sp ramp steps, 6·sp more, `--accumulation` micro-batches a step)
/// costs Σ over its steps of the step time at its point of the ramp (linear between measured points, the ramp's
/// end after it); "no_skip" is the same run timed at the trace's first state (nothing closed) throughout: what every
/// step costs when no gate closes, the bound for targets the trace does not reach. Without MODEL_DIR, bert-base
/// with random weights (`hcore-bench bert-base`'s).
func benchPruneEstimate() throws {
    var folder = NSTemporaryDirectory() + "hcore-bert-base-random"
    if CommandLine.arguments.count > 2 && !CommandLine.arguments[2].hasPrefix("--") {
        folder = CommandLine.arguments[2]
    } else if !FileManager.default.fileExists(atPath: folder + "/model.safetensors") {
        try makeRandomBertBase(folder: folder)
    }
    guard let trace = stringArg("--gates") else {
        print("prune-estimate needs --gates TRACE (a run's `hcore prune --trace` file)")
        exit(2)
    }
    let model = try BertModel.load(folder: folder)
    let (B, T) = (arg("--batch", 32), arg("--length", 128))
    let (batch, acts) = try pruneBenchBatch(model, sequences: B, length: T)
    let cached = try model.fullModelProbabilities(batch).flatMap { $0 }
    let (L, H) = (model.layerCount, model.headCount)
    let percents = Array(stride(from: 0, through: 100, by: 10))
    var times: [Double] = []
    for st in try gateStates(trace: trace, percents: percents) {
        let logAlpha = mapGates(st.logAlpha, layers: L, heads: H)
        let t = try timePruneStep(
            model, batch, acts, logAlpha: logAlpha, fullModel: cached, skip: true, reps: arg("--reps", 3))
        times.append(t.median)
        out([
            ("bench", "prune_estimate_point"), ("model", .string(folder)), ("gates", .string(st.label)),
            ("closed_units_mean", .float(t.closed)), ("units", .int(logAlpha.count)), ("seconds", .float(t.median)),
        ])
    }
    let accumulation = Double(arg("--accumulation", 4))
    let seeds = arg("--seeds", 12)
    let targets = (stringArg("--targets") ?? "50").split(separator: ",").map { Int($0)! }
    var total = (projected: 0.0, noSkip: 0.0)
    for sp in targets {
        let (warmup, steps) = referenceRecipe(targetSparsity: Double(sp) / 100)
        var seconds = 0.0
        for step in 0..<steps {
            let f = min(1, Double(step) / Double(warmup)) * 10
            let i = min(9, Int(f))
            seconds += times[i] + (times[i + 1] - times[i]) * (f - Double(i))
        }
        let run = (projected: seconds * accumulation, noSkip: Double(steps) * times[0] * accumulation)
        total = (total.projected + run.projected * Double(seeds), total.noSkip + run.noSkip * Double(seeds))
        out([
            ("bench", "prune_estimate"), ("target_percent", .int(sp)), ("steps", .int(steps)),
            ("ramp_steps", .int(warmup)), ("micro_batches_per_step", .int(Int(accumulation))),
            ("hours_per_seed", .float(run.projected / 3600)), ("hours_per_seed_no_skip", .float(run.noSkip / 3600)),
        ])
    }
    out([
        // Job-hours: the runs' wall hours summed, each run one job with this many threads.
        ("bench", "prune_estimate_total"), ("runs", .int(seeds * targets.count)),
        ("job_hours_projected", .float(total.projected / 3600)), ("job_hours_no_skip", .float(total.noSkip / 3600)),
        ("threads_per_job", .int(ThreadPool.shared.threadCount)),
    ])
}

/// log α for a model of L × H heads and L MLPs from a trace's (its own when the counts match): each head takes a
/// random traced head's value, each MLP a random traced MLP's (SplitMix64(7)). The traced model has 12 heads a
/// layer (MiniLM and bert-base both do), so its layer count is the value count / 13.
func mapGates(_ traced: [Double], layers L: Int, heads H: Int) -> [Double] {
    if traced.count == L * H + L { return traced }
    let traceLayers = traced.count / 13
    precondition(traceLayers * 13 == traced.count, "a trace of a model with 12 heads a layer")
    let heads = Array(traced[..<(traceLayers * 12)])
    let mlps = Array(traced[(traceLayers * 12)...])
    var rng = SplitMix64(seed: 7)
    return (0..<(L * H)).map { _ in heads[Int(rng.next() % UInt64(heads.count))] }
        + (0..<L).map { _ in mlps[Int(rng.next() % UInt64(mlps.count))] }
}

/// A store benchmark's mask: `units` bits from the top bit of a linear congruential stream.
func storeMaskBits(_ units: Int, _ state: inout UInt64) -> [UInt8] {
    (0..<units).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1
        return UInt8(state >> 63)
    }
}

/// `hcore-bench store-open`
func benchStoreOpen() throws {
    // Opening a store of 1000 BERT-base subnetworks and listing every name and kept count (the part of
    // `hcore store ls` and of every --store command that scales with the store).
    let path = NSTemporaryDirectory() + "hcore-bench-\(getpid()).hcs"
    defer { unlink(path) }
    let layout = StoreLayout(layers: 12, heads: 12)
    var state: UInt64 = 3
    let subs = (0..<1000).map { i in
        StoredSubnetwork(
            name: "sub\(i)",
            mask: storeMaskBits(layout.unitCount, &state))
    }
    let store = try SubnetworkStore.create(path: path, fingerprint: "hc1-0000000000000001", layout: layout)
    try store.add(subs)
    var best = Double.infinity
    for _ in 0..<arg("--reps", 5) {
        let t0 = now()
        let listing = try SubnetworkStore.open(path: path).subnetworks.map {
            "\($0.name) \($0.mask.reduce(0) { $0 + Int($1) })"
        }
        best = min(best, now() - t0)
        precondition(listing.count == 1000)
    }
    out([("bench", "store_open"), ("subnetworks", 1000), ("seconds", .float(best))])
}

/// `hcore-bench store-adds`
func benchStoreAdds() throws {
    // 10,000 one-subnetwork `add`s to a bert-base store, as a job committing one subnetwork at a time does:
    // total time and final size (the incremental index and automatic compaction keep both proportional).
    let path = NSTemporaryDirectory() + "hcore-bench-adds-\(getpid()).hcs"
    defer { unlink(path) }
    let layout = StoreLayout(layers: 12, heads: 12)
    let count = arg("--count", 10_000)
    let store = try SubnetworkStore.create(path: path, fingerprint: "hc1-0000000000000001", layout: layout)
    var state: UInt64 = 5
    let t0 = now()
    for i in 0..<count {
        let mask = storeMaskBits(layout.unitCount, &state)
        try store.add([StoredSubnetwork(name: "sub\(i)", mask: mask, meta: .object([("seed", .int(i))]))])
    }
    let seconds = now() - t0
    let reread = try SubnetworkStore.open(path: path).subnetworks.count
    precondition(reread == count)
    out([
        ("bench", "store_adds"), ("subnetworks", .int(count)), ("seconds", .float(seconds)),
        ("bytes", .int(store.fileSize)),
    ])
}

/// `hcore-bench store-updates`
func benchStoreUpdates() throws {
    // 20,000 metadata updates that each name one subnetwork, as `eval --write-back` of single subnetworks or a
    // script setting one key at a time does: one commit each, on a store of 1,000 bert-base subnetworks, then
    // the store opened again. Then `store verify`'s work (open and check every block) on that store, whose index
    // is a long chain of delta footers.
    let path = NSTemporaryDirectory() + "hcore-bench-updates-\(getpid()).hcs"
    defer { unlink(path) }
    let layout = StoreLayout(layers: 12, heads: 12)
    let (count, updates) = (arg("--subnetworks", 1000), arg("--count", 20_000))
    let store = try SubnetworkStore.create(path: path, fingerprint: "hc1-0000000000000001", layout: layout)
    var state: UInt64 = 7
    try store.add(
        (0..<count).map { i in
            StoredSubnetwork(
                name: "sub\(i)",
                mask: storeMaskBits(layout.unitCount, &state))
        })
    let t0 = now()
    for k in 0..<updates { try store.updateMeta([("sub\(k % count)", [("eval/k\(k % 7)", .float(Double(k)))])]) }
    let seconds = now() - t0
    let t1 = now()
    let reopened = try SubnetworkStore.open(path: path)
    for a in reopened.activationSets { _ = try reopened.activationSet(a.name) }
    let verify = now() - t1
    precondition(reopened.subnetworks.count == count)
    let (chain, chainBytes, chainVerify) = try verifyDeltaChain(arg("--deltas", 5000))
    out([
        ("bench", "store_updates"), ("subnetworks", .int(count)), ("updates", .int(updates)),
        ("seconds", .float(seconds)), ("verify_seconds", .float(verify)), ("bytes", .int(store.fileSize)),
        ("chain_deltas", .int(chain)), ("chain_bytes", .int(chainBytes)), ("chain_verify_seconds", .float(chainVerify)),
    ])
}

/// A store whose index is `deltas` delta footers, each removing and re-adding one of its 100 subnetworks (a
/// valid file hcore's own writer does not make: it writes a full footer once the deltas outweigh one), and the
/// time `store verify`'s work takes on it.
func verifyDeltaChain(_ deltas: Int) throws -> (deltas: Int, bytes: Int, seconds: Double) {
    let path = NSTemporaryDirectory() + "hcore-bench-chain-\(getpid()).hcs"
    defer { unlink(path) }
    let layout = StoreLayout(layers: 2, heads: 3)
    let store = try SubnetworkStore.create(path: path, fingerprint: "hc1-0000000000000001", layout: layout)
    try store.add((0..<100).map { StoredSubnetwork(name: "s\($0)", mask: [1, 0, 1, 1, 1, 0, 1, 1]) })
    let rows = store.index.rows
    var (base, sequence) = (store.index.footer!, store.index.sequence)
    var bytes = try readDataFile(path)
    precondition(bytes.count == store.index.length)
    for k in 0..<deltas {
        let r = rows[k % rows.count]
        let row: JSONValue = .object([
            ("name", .string(r.name)), ("masks", .int(r.masks)), ("row", .int(r.row)), ("entries", .int(r.entries)),
        ])
        let delta: JSONValue = .object([
            ("sequence", .int(sequence + 1)), ("base", .int(base)), ("added", [row]),
            ("removed", [.string(r.name)]), ("metadata_updates", []),
        ])
        let footer = SubnetworkStore.block(.footer, Array(delta.compact.utf8))
        let at = bytes.count
        let end = at + footer.count + 64
        let commit = [at, footer.count, sequence + 1, end].flatMap { le64(UInt64($0)) }
        bytes += footer + SubnetworkStore.block(.commit, commit)
        (base, sequence) = (at, sequence + 1)
    }
    try writeAtomically(bytes, to: path)
    let t0 = now()
    let s = try SubnetworkStore.open(path: path)
    for a in s.activationSets { _ = try s.activationSet(a.name) }
    let seconds = now() - t0
    precondition(s.subnetworks.count == 100 && s.index.sequence == sequence)
    return (deltas, bytes.count, seconds)
}

/// `hcore-bench fuzz-seeds`
func benchFuzzSeeds() throws {
    // Small valid inputs for every fuzz target (Fuzz/corpus/<target>/seed-*), written by hcore's own writers.
    let root = CommandLine.arguments.count > 2 ? CommandLine.arguments[2] : "Fuzz/corpus"
    func seed(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
        try FileManager.default.createDirectory(atPath: "\(root)/\(target)", withIntermediateDirectories: true)
        try writeAtomically(bytes, to: "\(root)/\(target)/seed-\(name)")
    }
    var st = SafetensorsWriter()
    st.metadata = ["format": "pt"]
    st.add("avg_head", shape: [2, 3, 4], (0..<24).map(Float.init))
    st.add("avg_mlp", shape: [2, 12], (0..<24).map { Float($0) / 8 })
    try seed("safetensors", "activations", st.serialized())
    var tw = TorchCheckpointWriter()
    tw.add("bert.embeddings.LayerNorm.weight", shape: [4], [1, 1, 1, 1])
    tw.add("bert.embeddings.position_ids", shape: [1, 4], int64: [0, 1, 2, 3])
    try seed("torch-bin", "small", tw.serialized())
    try seed("zip", "small", tw.serialized())
    try seed("pickle", "state-dict", tw.pickle())
    try seed("json", "object", Array(#"{"a": [1, 2.5, "x", null, true, {"b": []}], "c": "\u00e9"}"#.utf8))
    try seed(
        "config", "bert",
        Array(
            #"{"model_type": "bert", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16, "id2label": {"0": "entailment", "1": "neutral", "2": "contradiction"}}"#
                .utf8))
    try seed("vocab", "small", Array("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ndoctor\n##s\nsaw\n.\n".utf8))
    try seed(
        "tokenizer-json", "small",
        Array(
            ###"{"model": {"type": "WordPiece", "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "the": 4, "##s": 5}}, "normalizer": {"type": "BertNormalizer", "lowercase": true}, "added_tokens": [{"id": 0, "content": "[PAD]"}]}"###
                .utf8))
    let storePath = NSTemporaryDirectory() + "hcore-seed-\(getpid()).hcs"
    let store = try SubnetworkStore.create(
        path: storePath, fingerprint: "hc1-0000000000000001", layout: StoreLayout(layers: 2, heads: 3))
    try store.add([
        StoredSubnetwork(
            name: "a", mask: [1, 0, 1, 1, 1, 0, 1, 0], logAlpha: [Float](repeating: 1, count: 8),
            meta: .object([("seed", 1)]))
    ])
    try store.updateMeta([("a", [("eval/hans", 0.5)])])
    try store.add([StoredSubnetwork(name: "b", mask: [0, 0, 1, 1, 1, 0, 1, 1])])
    try seed("store", "small", Array(try Data(contentsOf: URL(fileURLWithPath: storePath))))
    unlink(storePath)
    try seed(
        "tsv", "mnli",
        Array(
            "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n0\t1\t1e\tfiction\tx\tx\tx\tx\tThe doctor saw the lawyer.\tThe lawyer saw the doctor.\tneutral\tneutral\n"
                .utf8))
    try seed(
        "hans", "two-rows",
        Array(
            "gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tpairID\theuristic\tsubcase\ttemplate\nnon-entailment\tx\tx\tx\tx\tThe doctor saw the lawyer .\tThe lawyer saw the doctor .\tex0\tlexical_overlap\tln_subject/object_swap\ttemp1\n"
                .utf8))
    try seed(
        "jsonl", "pairs",
        Array(
            "{\"text\": \"a b\", \"text_pair\": \"b a\", \"label\": \"entailment\"}\n{\"text\": \"c\", \"label\": 1}\n"
                .utf8))
    try seed("csv", "pairs", Array("text,text_pair,label\n\"a, b\",b a,entailment\nc,\"d \"\"e\"\"\",neutral\n".utf8))
    try seed("mask", "small", Array(#"{"heads": [[1, 0, 1], [1, 0.5, 0]], "mlps": [1, 0]}"#.utf8))
    try seed(
        "subnetwork-jsonl", "two",
        Array(
            #"{"name": "a", "heads": [[1, 0, 1], [1, 1, 0]], "mlps": [1, 0], "meta": {"x": 1}}"#.utf8 + [0x0A]
                + #"{"name": "b", "heads": [[0, 0, 1], [1, 1, 0]], "mlps": [1, 1], "log_alpha": [1, 2, 3, 4, 5, 6, 7, 8]}"#
                .utf8))
    try resultsAndResumeSeeds(seed)
    print("wrote seeds under \(root)")
}

/// Seeds of the results-file and resume-state targets.
func resultsAndResumeSeeds(_ seed: (String, String, [UInt8]) throws -> Void) throws {
    // Results files of the reference (figures) as the fixtures hold them, and small shapes of each kind.
    for name in ["mnli-sp50", "mnli-acc_vs_sparsity", "mnli-acc_over_ft", "qqp-acc_vs_sparsity"] {
        try seed("results", name, try readDataFile("Tests/Fixtures/reference/eval/\(name).json"))
    }
    try seed("results", "grid", Array(#"{"42": {"0": {"50": {"validation_matched": 0.8, "x": -1}}}}"#.utf8))
    // A pruning checkpoint of a two-unit run, and a trace of four steps.
    let adam = #"{"optimizer": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weightDecay": 0, "t": 1}"#
    let state = try JSONDecoder().decode(
        PruneState.self,
        from: Data(
            (#"{"step": 1, "logAlpha": [0.5, -1], "lambdas": [0, 0], "optimizerLogAlpha": \#(adam), "m": [0.1, 0.2], "#
                + #""v": [0.01, 0.02]}, "optimizerLambda": \#(adam), "m": [0, 0], "v": [0, 0]}, "rng": {"state": 7}, "#
                + #""order": [1, 0, 2], "cursor": 2, "history": []}"#).utf8))
    try seed("prune-checkpoint", "two-units", try PruneRuns.checkpointBytes(state, run: "run"))
    try seed(
        "prune-trace", "four-steps",
        Array((0..<5).map { #"{"step": \#($0), "kl": 0.1, "log_alpha": [1, 2]}"# + "\n" }.joined().utf8))
}

/// `hcore-bench readers [MODEL]`: path patching of one sender set (three heads and an MLP) to every later head's
/// q, k, v and the logits, on 25 pairs of each plotted HANS subcase — what each control set of `hcore circuits
/// readers` costs.
func benchReaders() throws {
    let folder =
        CommandLine.arguments.count > 2 && !CommandLine.arguments[2].hasPrefix("--")
        ? CommandLine.arguments[2] : "Tests/Fixtures/models/minilm-nli"
    let model = try BertModel.load(folder: folder)
    let tok = try BertTokenizer.load(folder: folder)
    let all = try Dataset.load("data/hans/heuristics_evaluation_set.txt.zst").examples
    let examples = perStratumSample(all, perStratum: 25, strata: plottedHANSSubcases, seed: 0).map { all[$0] }
    let enc = try encodeAll(examples, tokenizer: tok, options: PredictionOptions())
    let batches = stride(from: 0, to: enc.count, by: 32).map { TokenBatch(Array(enc[$0..<min(enc.count, $0 + 32)])) }
    let acc = ActivationAccumulator(model: model)
    for b in batches { try model.encode(b, observer: acc).deallocate() }
    let senders = PatchSenders(heads: [(0, 3), (1, 7), (2, 2)], mlps: [0])
    let receivers = patchReceivers(senders: senders, layers: model.layerCount, heads: model.headCount)
    let t0 = now()
    _ = try pathPatch(
        model: model, batches: batches, senders: senders, receivers: receivers,
        corruption: .mean(acc.result(fingerprint: model.fingerprint)), entailment: 0)
    out([
        ("bench", "readers"), ("examples", .int(enc.count)), ("receivers", .int(receivers.count)),
        ("seconds_per_sender_set", .float(now() - t0)),
    ])
}

let benchmarks: [String: () throws -> Void] = [
    "peak": benchPeak,
    "gemm": benchGemm,
    "attention": benchAttention,
    "gemm-ab": benchGemmAb,
    "out-norm": benchOutNorm,
    "bert-base": benchBertBase,
    "hans": benchHans,
    "eval-many": benchEvalMany,
    "prune-step": benchPruneStep,
    "prune-estimate": benchPruneEstimate,
    "store-open": benchStoreOpen,
    "store-adds": benchStoreAdds,
    "store-updates": benchStoreUpdates,
    "fuzz-seeds": benchFuzzSeeds,
    "readers": benchReaders,
]

guard let benchmark = benchmarks[command] else {
    print(
        "usage: hcore-bench peak|gemm|gemm-ab|out-norm|attention|bert-base|hans [MODEL_DIR]|eval-many"
            + "|prune-step [MODEL_DIR]|prune-estimate [MODEL_DIR] --gates TRACE|store-open|store-adds|reads [MODEL_DIR]"
    )
    exit(2)
}
try benchmark()
