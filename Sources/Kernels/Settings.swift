// The environment variables the kernels read, for tuning only; none changes a result beyond rounding
// (Model/ModelSettings.swift has the model's two).
//   HCORE_THREADS=n     worker threads of the shared pool (default: the active processors; at most 8 per
//                       processor and 256, since a thread that cannot start would leave the pool waiting)
//   HCORE_GEMM_KC=k     depth of one GEMM K slice (default 768)
//   HCORE_GEMM_MC=m     rows of one GEMM tile, rounded down to a multiple of the micro-kernel's rows (default 72)
import Foundation

public enum Settings {
    static let environment = ProcessInfo.processInfo.environment

    static func positiveInt(_ name: String) -> Int? {
        environment[name].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
    }

    public static let threads: Int = {
        let processors = max(1, ProcessInfo.processInfo.activeProcessorCount)
        return min(positiveInt("HCORE_THREADS") ?? processors, 8 * processors, 256)
    }()
    public static let gemmKC = min(positiveInt("HCORE_GEMM_KC") ?? 768, 1 << 16)
    public static let gemmMC = min(positiveInt("HCORE_GEMM_MC") ?? 72, 1 << 16)
}
