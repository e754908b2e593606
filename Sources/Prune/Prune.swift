// L0 structured pruning of heads and MLP blocks with weights frozen (Heuristic-Core's method):
//
//   gates      one hard-concrete gate per head and per MLP, log α ~ N(10, 0.01) at the start;
//              z = clamp((r − l)·σ((log u − log(1−u) + log α)/T) + l, 0, 1), u ~ U(eps, 1−eps)
//   loss       KL(full ‖ subnetwork) (mean ablation) + λ1·(t − s) + λ2·(t − s)²,
//              s = 1 − Σz/U over this step's sampled gates, t the target sparsity at this step
//   optimiser  AdamW (β 0.9/0.999, eps 1e-8, weight decay 0.01) on log α (minimising) and on λ (maximising),
//              learning rates with linear warm-up then linear decay; gradient accumulation
//   target     start sparsity → target sparsity over the sparsity warm-up (linear, or logarithmic:
//              1 − exp of the linear interpolation of log(1 − sparsity)), then constant
// The gradient of the KL with respect to the gates comes from Model's backward pass (maskGradients);
// dz/dlog α is the hard-concrete's reparameterised derivative (zero where the clamp is active).
// The subnetwork runs in training mode as in the reference: hidden dropout (`dropout`, default the model
// config's hidden_dropout_prob) and attention-probability dropout (`attentionDropout`, default the config's
// attention_probs_dropout_prob), while the full model it is compared with runs without. The random numbers are hcore's own (SplitMix64), so seeds do not reproduce
// PyTorch runs, but the same seed reproduces an hcore run exactly — also across an interruption: the whole
// state (log α, λ, both optimisers, the generator, the data order) is a `PruneState` that `prune` hands to
// `checkpoint` and accepts back as `resume`.
import Failures
import Foundation
import Kernels
import Model
import Optimization
import Tokenizer

public struct PruneConfig: Sendable {
    public var targetSparsity = 0.5
    public var startSparsity = 0.0
    public var sparsityWarmupSteps = 9000
    public var maxSteps = 9300
    public var learningRate = 0.1
    public var regLearningRate = 1.0
    public var warmupSteps = 200
    public var gradientAccumulationSteps = 4
    public var batchSize = 32
    public var warmupType = "linear"  // or "logarithmic"
    public var seed: UInt64 = 42
    public var threshold: Float = 0.5
    /// log α starts at N(initialLogAlpha, 0.01): the paper's 10 keeps every gate closed to 1 for a long
    /// warm-up; short runs (the demo) start lower so that the gates receive gradient from the first steps.
    public var initialLogAlpha = 10.0
    /// Hidden dropout in the subnetwork; nil: the model config's hidden_dropout_prob (the reference's training mode).
    public var dropout: Float? = nil
    /// Attention-probability dropout in the subnetwork; nil: `dropout` when that is set (so dropout 0 turns both
    /// off), else the config's attention_probs_dropout_prob.
    public var attentionDropout: Float? = nil
    /// One global L2 norm over every log α and both λ, clipped after accumulation and before the optimizer
    /// step, as HF's Trainer does (its max_grad_norm, default 1.0); 0 turns clipping off.
    public var maxGradNorm = 1.0
    /// Reshuffle the training set every pass (the Trainer's sampler); false takes batches in file order.
    public var shuffle = true
    public init() {}
}

extension PruneConfig {
    /// The hidden and attention-probability dropout the subnetwork of `model` runs with (see the fields).
    public func dropouts(for model: BertModel) -> (hidden: Float, attention: Float) {
        (
            dropout ?? model.config.hiddenDropoutProb,
            attentionDropout ?? dropout ?? model.config.attentionProbsDropoutProb
        )
    }
}

public struct PruneStep: Sendable, Codable {
    public var step: Int, kl: Double, lagrangian: Double, expectedSparsity: Double, sampledSparsity: Double
    public var target: Double, lambda1: Double, lambda2: Double
    /// The gradient norm before clipping, the learning rate of log α, and each micro-batch's KL and sampled
    /// sparsity (optional only so that older checkpoints still decode).
    public var gradNorm: Double? = nil
    public var learningRate: Double? = nil
    public var microKL: [Double]? = nil
    public var microSparsity: [Double]? = nil
    /// The learning rate of λ at this step.
    public var regLearningRate: Double? = nil
    /// The periodic evaluation after this step, when one ran (`PruneEvaluation`).
    public var evaluation: PruneEvaluationResult? = nil
    /// log α after this step: set on the record `onStep` receives (the trace), never kept in the history.
    public var logAlpha: [Double]? = nil
}

/// The reference's periodic evaluation (its --do_eval with --eval_steps): after every `every` optimizer steps
/// and after the last, the current log α's deterministic masks (the reference's rule: per layer the k smallest
/// soft values zeroed, the others keeping their soft value) run on `encodings` with mean ablation.
public struct PruneEvaluation: Sendable {
    public var encodings: [Encoding]
    /// Gold labels, one scoring-class index per encoding, for accuracy; nil: KL only.
    public var labels: [Int]?
    /// Each model class's scoring class (HANS collapses neutral and contradiction); nil: the identity.
    public var predictedClass: [Int]?
    public var every: Int
    public init(encodings: [Encoding], labels: [Int]?, predictedClass: [Int]? = nil, every: Int) {
        self.encodings = encodings
        self.labels = labels
        self.predictedClass = predictedClass
        self.every = every
    }
}

public struct PruneEvaluationResult: Sendable, Codable {
    /// Mean KL(full ‖ subnetwork) over the examples, and accuracy against the labels (nil without).
    public var kl: Double, accuracy: Double?
    /// The deterministic masks' sparsity (fraction of units at exactly 0).
    public var sparsity: Double
}

public struct PruneResult: Sendable {
    public var logAlpha: [Float]
    public var masks: MaskValues  // binary, deterministic rule at the threshold
    public var history: [PruneStep]
    public var achievedSparsity: Double
}

/// The step counts of the reference's scripts/pruning/prune-all-*.sh for a target sparsity: with sp the
/// target in percent, a sparsity warm-up of 6500 + 50·sp steps and 6·sp more at the target.
public func referenceRecipe(targetSparsity t: Double) -> (warmup: Int, total: Int) {
    let sp = Int((t * 100).rounded())
    return (6500 + 50 * sp, 6500 + 50 * sp + 6 * sp)
}

public func targetSparsity(step: Int, config c: PruneConfig) -> Double {
    guard c.sparsityWarmupSteps > 0, step < c.sparsityWarmupSteps else { return c.targetSparsity }
    let f = Double(step) / Double(c.sparsityWarmupSteps)
    if c.warmupType == "logarithmic" {
        let a = log(1 - c.startSparsity)
        let b = log(1 - c.targetSparsity)
        return 1 - exp(a + f * (b - a))
    }
    return c.startSparsity + f * (c.targetSparsity - c.startSparsity)
}

/// One micro-batch of the pruning objective: gates sampled from `logAlpha` with uniforms `u`, the KL to the
/// full model plus λ1·(t − s) + λ2·(t − s)², and its gradient with respect to log α (chain rule through
/// the hard-concrete sample; zero where the clamp is active). Only the gates whose clamp is inactive need their
/// ∂loss/∂z, so by default (`skipClosedGates`) the pass skips every unit sampled at exactly 0 and forms no ∂z
/// of a clamped gate (Model/GatePlan.swift); the gradient is the unskipped pass's to rounding.
public struct PruneObjective: Sendable {
    public var kl: Double, lagrangian: Double, gap: Double, sampledSparsity: Double
    public var gradLogAlpha: [Double]
    public var loss: Double { kl + lagrangian }
}

public func pruneObjective(
    model: BertModel, batch: TokenBatch, logAlpha: [Double], u: [Double], lambdas: [Double], target t: Double,
    activations: MeanActivations, dropout: Float = 0, attentionDropout: Float = 0, dropoutSeed: UInt64 = 0,
    fullProbabilities: [Double]? = nil, skipClosedGates: Bool = true, pool: ThreadPool = .shared
) throws -> PruneObjective {
    let L = model.layerCount
    let H = model.headCount
    let U = L * H + L
    precondition(logAlpha.count == U && u.count == U && lambdas.count == 2)
    var z = [Float](repeating: 0, count: U)
    var dzda = [Double](repeating: 0, count: U)
    for i in 0..<U { (z[i], dzda[i]) = HardConcrete.sampleWithDerivative(logAlpha: logAlpha[i], u: u[i]) }
    let masks = MaskValues(units: z, layers: L, heads: H)
    let g = try model.maskGradients(
        batch, masks: masks, ablation: .mean(activations),
        objective: fullProbabilities.map { .klToProbabilities($0) } ?? .kl,
        dropout: dropout, attentionDropout: attentionDropout, dropoutSeed: dropoutSeed,
        needed: skipClosedGates ? dzda.map { $0 != 0 } : nil, pool: pool)
    let s = 1 - Double(z.reduce(0, +)) / Double(U)
    let gap = t - s
    let lag = lambdas[0] * gap + lambdas[1] * gap * gap
    // d lag / d z_i = (λ1 + 2 λ2 (t − s)) / U, since d(t − s)/dz_i = 1/U
    let dLagdz = (lambdas[0] + 2 * lambdas[1] * gap) / Double(U)
    let grad = (0..<U).map { i in ((i < L * H ? g.heads[i / H][i % H] : g.mlps[i - L * H]) + dLagdz) * dzda[i] }
    return PruneObjective(kl: g.loss, lagrangian: lag, gap: gap, sampledSparsity: s, gradLogAlpha: grad)
}

/// Everything a run needs to continue exactly where it stopped.
public struct PruneState: Sendable, Codable {
    public var step: Int
    public var logAlpha: [Double]
    public var lambdas: [Double]
    public var optimizerLogAlpha: AdamWState
    public var optimizerLambda: AdamWState
    public var rng: SplitMix64
    public var order: [Int]
    public var cursor: Int
    public var history: [PruneStep]
}

/// The frozen reference model's output distribution per training example, filled the first time an example
/// is drawn. It depends on neither the seed nor the gates, so the runs of one `PruneRuns` share it: each
/// run after the first skips the full model's forward pass entirely (a batch's rows are computed
/// independently, so a distribution does not depend on which batch first computed it). One run at a time.
public final class FullModelDistributions {
    fileprivate var rows: [[Double]?]
    public init(count: Int) { rows = [[Double]?](repeating: nil, count: count) }
    public var count: Int { rows.count }
    /// How many examples have their distribution.
    public var filled: Int { rows.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
}

/// `noise`, when given, replaces the hard-concrete noise: one row of U uniforms per micro-batch, in order
/// (a reference run replayed exactly); it must cover every micro-batch of the run. `reference`, when given, is
/// the model whose distribution the subnetwork is pulled towards (the reference's --ref_initialize_from);
/// default: the full `model`.
public func prune(
    model: BertModel, encodings: [Encoding], activations: MeanActivations, config c: PruneConfig,
    initialLogAlpha: [Float]? = nil, noise: [[Double]]? = nil, reference: BertModel? = nil,
    evaluation: PruneEvaluation? = nil, resume: PruneState? = nil, resumeFile: String = "the checkpoint",
    checkpointEvery: Int = 100, checkpoint: ((PruneState) throws -> Void)? = nil,
    fullDistributions: FullModelDistributions? = nil,
    pool: ThreadPool = .shared,
    onStep: ((PruneStep) -> Void)? = nil
) throws -> PruneResult {
    let loop = try PruneLoop(
        model: model, reference: reference ?? model, encodings: encodings, activations: activations, config: c,
        noise: noise, fullDistributions: fullDistributions, pool: pool)
    let evaluator = try evaluation.map {
        try PruneEvaluator($0, model: model, reference: loop.target, activations: activations, pool: pool)
    }
    var state = try resume.map { try loop.checked($0, from: resumeFile) } ?? loop.initialState(initialLogAlpha)
    while state.step < c.maxSteps {
        var record = try loop.step(&state)
        if let evaluator, state.step % evaluator.every == 0 || state.step == c.maxSteps {
            record.evaluation = try evaluator.run(logAlpha: state.logAlpha)
        }
        state.history.append(record)
        record.logAlpha = state.logAlpha
        onStep?(record)
        if let checkpoint, checkpointEvery > 0, state.step % checkpointEvery == 0, state.step < c.maxSteps {
            try checkpoint(state)
        }
    }
    let la = state.logAlpha.map(Float.init)
    let masks = MaskValues.fromLogAlpha(la, layers: model.layerCount, heads: model.headCount, threshold: c.threshold)
    return PruneResult(
        logAlpha: la, masks: masks, history: state.history,
        achievedSparsity: 1 - Double(masks.keptCount) / Double(loop.units))
}

/// One pruning run's fixed parts — the models, data, settings and the full model's distributions — and its step:
/// the micro-batches' objective accumulated, clipped, and AdamW on log α (descent) and λ (ascent).
final class PruneLoop {
    let model: BertModel, target: BertModel
    let encodings: [Encoding]
    let activations: MeanActivations
    let c: PruneConfig
    let noise: [[Double]]?
    let fullCache: FullModelDistributions
    let pool: ThreadPool
    let units: Int
    let dropout: Float, attentionDropout: Float

    init(
        model: BertModel, reference: BertModel, encodings: [Encoding], activations: MeanActivations,
        config c: PruneConfig,
        noise: [[Double]]?, fullDistributions: FullModelDistributions?, pool: ThreadPool
    ) throws {
        (self.model, target, self.encodings, self.activations, self.c) = (model, reference, encodings, activations, c)
        (self.noise, self.pool) = (noise, pool)
        units = model.layerCount * model.headCount + model.layerCount
        (dropout, attentionDropout) = c.dropouts(for: model)
        // The full model's distribution per example, computed the first time the example is drawn (the weights are
        // frozen, so it never changes): a third of a step's work in later epochs.
        fullCache = fullDistributions ?? FullModelDistributions(count: encodings.count)
        try validate()
    }

    func validate() throws {
        guard (0..<1).contains(c.targetSparsity), (0..<1).contains(c.startSparsity) else {
            throw SettingError("targetSparsity", "and the start sparsity must lie in [0, 1)")
        }
        guard !encodings.isEmpty else { throw ModelError.badInput("the training file has no examples") }
        guard c.maxSteps > 0 else { throw SettingError("maxSteps", "must be positive") }
        guard c.batchSize > 0 else { throw SettingError("perDeviceTrainBatchSize", "must be positive") }
        guard c.gradientAccumulationSteps > 0 else {
            throw SettingError("gradientAccumulationSteps", "must be positive")
        }
        guard c.maxGradNorm >= 0, c.maxGradNorm.isFinite else { throw SettingError("maxGradNorm", "must be ≥ 0") }
        guard (0..<1).contains(dropout), (0..<1).contains(attentionDropout) else {
            throw SettingError("dropout", "must lie in [0, 1)")
        }
        try model.checkActivations(activations)
        guard target.config.numLabels == model.config.numLabels else {
            throw ModelError.badInput(
                "the reference model has \(target.config.numLabels) labels, the pruned one \(model.config.numLabels)")
        }
        guard fullCache.count == encodings.count else {
            throw ModelError.badInput(
                "the shared full-model distributions cover \(fullCache.count) examples; the training set has \(encodings.count)"
            )
        }
    }

    /// A fresh run's state: log α from `initial`, else the configured mean with N(0, 0.01) noise.
    func initialState(_ initial: [Float]?) throws -> PruneState {
        let (L, H) = (model.layerCount, model.headCount)
        if let initial, initial.count != units || initial.contains(where: { !$0.isFinite }) {
            throw ModelError.badInput(
                "the initial log α has \(initial.count) values; this model has \(units) units (\(L * H) heads, then \(L) MLPs), all finite"
            )
        }
        var rng = SplitMix64(seed: c.seed)
        let la: [Double] =
            initial.map { $0.map(Double.init) } ?? (0..<units).map { _ in c.initialLogAlpha + 0.01 * rng.normal() }
        return PruneState(
            step: 0, logAlpha: la, lambdas: [0, 0], optimizerLogAlpha: AdamWState(count: units),
            optimizerLambda: AdamWState(count: 2), rng: rng, order: Array(encodings.indices),
            cursor: encodings.count, history: [])
    }

    /// A checkpoint's state, if it fits this run field by field; a state that does not is refused, never trusted.
    func checked(_ resume: PruneState, from file: String) throws -> PruneState {
        let n = encodings.count
        var order = [Bool](repeating: false, count: n)
        let permutation =
            resume.order.count == n
            && resume.order.allSatisfy { i in
                guard (0..<n).contains(i), !order[i] else { return false }
                order[i] = true
                return true
            }
        let problems: [(Bool, String)] = [
            ((0...c.maxSteps).contains(resume.step), "step \(resume.step) outside 0…\(c.maxSteps)"),
            (
                resume.logAlpha.count == units && resume.logAlpha.allSatisfy(\.isFinite),
                "log α is not \(units) finite values"
            ),
            (resume.lambdas.count == 2 && resume.lambdas.allSatisfy(\.isFinite), "λ is not two finite values"),
            (resume.optimizerLogAlpha.isValid(count: units, maxSteps: c.maxSteps), "log α's Adam state does not fit"),
            (resume.optimizerLambda.isValid(count: 2, maxSteps: c.maxSteps), "λ's Adam state does not fit"),
            (permutation, "the example order is not a permutation of the \(n) training examples"),
            ((0...n).contains(resume.cursor), "the cursor \(resume.cursor) is outside 0…\(n)"),
            (resume.history.count <= resume.step, "the history is longer than the steps taken"),
        ]
        if let (_, why) = problems.first(where: { !$0.0 }) {
            throw ModelError.badInput(
                "\(file) does not fit this run (model, training set or steps): \(why); delete it to start over")
        }
        return resume
    }

    /// One optimizer step; returns its record (log α not yet attached).
    func step(_ state: inout PruneState) throws -> PruneStep {
        let step = state.step
        let t = targetSparsity(step: step, config: c)
        let k = Double(c.gradientAccumulationSteps)
        var sum = MicroBatchSum(units: units)
        for micro in 0..<c.gradientAccumulationSteps {
            sum.add(try microBatch(&state, index: step * c.gradientAccumulationSteps + micro, target: t), dividedBy: k)
        }
        let norm = sum.gradA.withUnsafeMutableBufferPointer { a in
            sum.gradL.withUnsafeMutableBufferPointer { clipGlobalNorm([a, $0], maxNorm: c.maxGradNorm) }
        }
        let f = learningRateFactor(step: step, warmup: c.warmupSteps, total: c.maxSteps)
        state.optimizerLogAlpha.step(&state.logAlpha, grad: sum.gradA, lr: c.learningRate * f)
        // gradient ascent on λ
        state.optimizerLambda.step(&state.lambdas, grad: sum.gradL.map { -$0 }, lr: c.regLearningRate * f)
        let expected = 1 - HardConcrete.expectedKept(state.logAlpha.map(Float.init)) / Double(units)
        state.step += 1
        return PruneStep(
            step: step, kl: sum.kl, lagrangian: sum.lagrangian, expectedSparsity: expected,
            sampledSparsity: sum.sampled,
            target: t, lambda1: state.lambdas[0], lambda2: state.lambdas[1], gradNorm: norm,
            learningRate: c.learningRate * f, microKL: sum.microKL, microSparsity: sum.microSparsity,
            regLearningRate: c.regLearningRate * f)
    }

    /// The next batch of a reshuffled pass over the data (in file order without shuffling), its gate noise and
    /// dropout seed drawn from the run's stream, and its objective.
    func microBatch(_ state: inout PruneState, index m: Int, target t: Double) throws -> PruneObjective {
        if state.cursor + c.batchSize > state.order.count {
            if c.shuffle { state.rng.shuffle(&state.order) }
            state.cursor = 0
        }
        let idx = state.order[state.cursor..<min(state.order.count, state.cursor + c.batchSize)]
        state.cursor += c.batchSize
        var u = (0..<units).map { _ in state.rng.uniform() }
        if let noise {
            guard m < noise.count, noise[m].count == units else {
                throw ModelError.badInput("the noise has no row of \(units) values for micro-batch \(m)")
            }
            u = noise[m]
        }
        let dropoutSeed = state.rng.next()
        let missing = idx.filter { fullCache.rows[$0] == nil }
        if !missing.isEmpty {
            let computed = try target.fullModelProbabilities(TokenBatch(missing.map { encodings[$0] }), pool: pool)
            for (i, p) in zip(missing, computed) { fullCache.rows[i] = p }
        }
        return try pruneObjective(
            model: model, batch: TokenBatch(idx.map { encodings[$0] }), logAlpha: state.logAlpha, u: u,
            lambdas: state.lambdas, target: t, activations: activations, dropout: dropout,
            attentionDropout: attentionDropout, dropoutSeed: dropoutSeed,
            fullProbabilities: idx.flatMap { fullCache.rows[$0]! }, pool: pool)
    }
}

/// A step's micro-batches summed, each divided by the accumulation.
struct MicroBatchSum {
    var gradA: [Double]
    var gradL = [0.0, 0.0]
    var kl = 0.0, lagrangian = 0.0, sampled = 0.0
    var microKL: [Double] = [], microSparsity: [Double] = []
    init(units: Int) { gradA = [Double](repeating: 0, count: units) }

    mutating func add(_ o: PruneObjective, dividedBy k: Double) {
        for i in gradA.indices { gradA[i] += o.gradLogAlpha[i] / k }
        gradL[0] += o.gap / k
        gradL[1] += o.gap * o.gap / k
        kl += o.kl / k
        lagrangian += o.lagrangian / k
        sampled += o.sampledSparsity / k
        microKL.append(o.kl)
        microSparsity.append(o.sampledSparsity)
    }
}
