// The environment variables Model reads, for benchmarking only; neither changes a result beyond rounding.
//   HCORE_ALL_ROWS=1    compute every row of the last layer, not only [CLS] (to compare like with like)
//   HCORE_PROFILE=1     per-stage wall-clock accounting of the forward pass (StageTimer)
import Foundation

public enum ModelSettings {
    static let environment = ProcessInfo.processInfo.environment
    public static let allRows = environment["HCORE_ALL_ROWS"] == "1"
    public static let profile = environment["HCORE_PROFILE"] == "1"
}
