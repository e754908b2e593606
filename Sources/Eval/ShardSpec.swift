// Splitting one job over several processes: shard i of n takes every n-th item (eval: subnetworks,
// prune: seeds). On a cluster the shard comes from the Slurm array the process runs in.
import Failures

public struct ShardSpec: Sendable, Equatable {
    /// 1…count.
    public let index: Int
    public let count: Int

    /// `spec` ("i/n"), or when it is nil SLURM_ARRAY_TASK_ID (relative to SLURM_ARRAY_TASK_MIN) of
    /// SLURM_ARRAY_TASK_COUNT from `environment`; nil when neither is given.
    public static func parse(_ flag: String?, environment: [String: String]) throws -> ShardSpec? {
        var spec = flag
        if spec == nil, let id = environment["SLURM_ARRAY_TASK_ID"], let count = environment["SLURM_ARRAY_TASK_COUNT"] {
            // Slurm's values are small; anything outside 0…2³¹ is refused before any arithmetic on it.
            let bound = 0...(1 << 31)
            guard let i = Int(id), let first = Int(environment["SLURM_ARRAY_TASK_MIN"] ?? "0"), bound.contains(i),
                bound.contains(first), i >= first
            else {
                throw SettingError(
                    "shard",
                    "is unset and SLURM_ARRAY_TASK_ID=\(id) (SLURM_ARRAY_TASK_MIN=\(environment["SLURM_ARRAY_TASK_MIN"] ?? "unset")) is not a task of this array; give the shard as i/n"
                )
            }
            spec = "\(i - first + 1)/\(count)"
        }
        guard let spec else { return nil }
        let parts = spec.split(separator: "/").map { Int($0) }
        guard parts.count == 2, let i = parts[0], let n = parts[1], n >= 1, (1...n).contains(i) else {
            throw SettingError("shard", "must be i/n with 1 ≤ i ≤ n, got \(spec)")
        }
        return ShardSpec(index: i, count: n)
    }

    /// This shard's share of `items`: every count-th one, from the (index − 1)-th.
    public func share<T>(_ items: [T]) -> [T] {
        items.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
    }
}
