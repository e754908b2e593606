// The subnetwork store: docs/store-format.md is the specification; this file implements it.
//
// A store only grows by appending blocks (zstd payloads with CRC-32s) followed by a footer (the live
// index) and a commit record. Readers take the last commit; a file cut short by a crash is read as of
// its last complete commit, while damage (a failed CRC, a bad header) is an error naming the block.
//
// Several processes may share a store (a Slurm array writing metrics back, parallel `store add`s): every
// write transaction holds an exclusive flock on the file, first re-reads the last commit (another process
// may have appended since this one opened it), then appends and fsyncs; readers hold a shared lock while
// they read, so they never see an append half-written. Compaction writes a new file and renames it over
// the old one under the same exclusive lock; a process that still holds the old state notices the new
// file (another inode) at its next transaction and re-reads it.
import Checkpoint
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

public struct StoreLayout: Equatable, Sendable {
    public let layers: Int
    public let heads: Int
    public var unitCount: Int { layers * heads + layers }

    public init(layers: Int, heads: Int) {
        self.layers = layers
        self.heads = heads
    }
}

/// One subnetwork as stored: binary masks over the units (heads layer-major, then MLPs), optional
/// log-alphas, and free-form metadata (seed, sparsity, steps, source, created, tags, metrics…).
public struct StoredSubnetwork: Sendable {
    public var name: String
    public var mask: [UInt8]
    public var logAlpha: [Float]?
    public var meta: JSONValue

    public init(name: String, mask: [UInt8], logAlpha: [Float]? = nil, meta: JSONValue = .object([])) {
        self.name = name
        self.mask = mask
        self.logAlpha = logAlpha
        self.meta = meta
    }
}

public final class SubnetworkStore {
    public let path: String
    public private(set) var fingerprint: String
    public private(set) var layout: StoreLayout
    public private(set) var created: String
    /// Live subnetworks in insertion order.
    public private(set) var subnetworks: [StoredSubnetwork] = [] { didSet { subnetworksVersion &+= 1 } }
    /// Each subnetwork's position by name, rebuilt only when the list changed since (`position(of:)`): an update
    /// naming one subnetwork must not cost a pass over all of them.
    private var subnetworksVersion = 0
    private var positions: (version: Int, byName: [String: Int]) = (-1, [:])
    /// Activation set names → block offsets.
    public private(set) var activationSets: [(name: String, offset: Int)] = []
    /// Set when the file ended inside an append and was read as of its last complete commit.
    public private(set) var recoveryNote: String?
    /// Bytes of the masks blocks' payloads on disk (compressed), for size reporting.
    public private(set) var maskPayloadBytes = 0

    /// What a benchmark needs to append blocks of its own (hcore-bench store-updates builds a long delta chain):
    /// the rows' block references, the last footer's offset, the sequence and the committed length.
    package var index:
        (rows: [(name: String, masks: Int, row: Int, entries: Int)], footer: Int?, sequence: Int, length: Int)
    {
        (rows, lastFooter, sequence, committedLength)
    }

    // Index state carried from commit to commit.
    private var metaOffset = 0
    private var rows: [(name: String, masks: Int, row: Int, entries: Int)] = []
    private var metadataUpdates: [(name: String, offset: Int)] = []
    private var sequence = 0
    private var committedLength = 0
    /// (device, inode) of the file the state was read from: compaction replaces the file.
    private var identity: (dev: UInt64, ino: UInt64) = (0, 0)
    /// File format version: 2 writes delta footers (below); a version-1 file keeps full footers so that
    /// older readers still read it.
    private var formatVersion = 2
    // Incremental index (version 2). A commit's footer is either full (every live row) or a delta naming
    // its base footer and only what changed since; a full footer is written when the deltas since the last
    // full one would outweigh it, so both a commit's size and a reader's work stay proportional to what
    // the store holds and what the commit adds.
    private var lastFooter: Int?
    private var lastFullFooterBytes = 0
    private var deltaBytesSinceFull = 0
    private var pendingAdded: [(name: String, masks: Int, row: Int, entries: Int)] = []
    private var pendingRemoved: [String] = []
    private var pendingUpdates: [(name: String, offset: Int)] = []
    private var pendingActivations = false
    /// The file's length right after its last compaction (0: never compacted), kept in full footers. An
    /// append that leaves the file longer than twice that plus `compactionSlack` compacts it, so a store
    /// written one subnetwork at a time stays within a small factor of its live size.
    private var compactedLength = 0
    private var forceFullFooter = false
    /// Set on the file a compaction builds: its blocks last, so they get zstd's strongest level.
    private var compressMaximally = false
    static let compactionSlack = 64 << 10

    static let fileMagic = Array("HCSTORE\0".utf8)
    static let blockMagic = Array("HCB1".utf8)
    static let maxPayload = 1 << 30
    static let maxUncompressed = 1 << 32

    package enum Kind: UInt8 {
        case meta = 1
        case masks = 2
        case entries = 3
        case activations = 4
        case footer = 5
        case commit = 6
    }

    /// The points of a write transaction after which a crash leaves a different file: the blocks written
    /// (not yet durable), the blocks fsync'ed (committed), a compaction's new file complete beside the store,
    /// and that file renamed over the store.
    public enum WriterStep: String, CaseIterable, Sendable {
        case written, synced, compactionWritten, compactionRenamed
    }

    /// Faults a test injects into one store's writer (given to `create` or `open`): its writes cut short after
    /// some bytes of an append (a full disk), or the writer stopped at a step as if its process died there —
    /// nothing is cleaned up, the operation throws `SimulatedCrash` and the test reopens the file.
    public struct WriterFaults: Sendable {
        public var failWritesAfterBytes: Int?
        public var crashAt: WriterStep?
        public init(failWritesAfterBytes: Int? = nil, crashAt: WriterStep? = nil) {
            self.failWritesAfterBytes = failWritesAfterBytes
            self.crashAt = crashAt
        }
    }
    public struct SimulatedCrash: Error {}
    /// This store's injected faults (none outside tests).
    public let faults: WriterFaults
    func reach(_ step: WriterStep) throws { if faults.crashAt == step { throw SimulatedCrash() } }

    // MARK: create / open

    public static func create(
        path: String, fingerprint: String, layout: StoreLayout, faults: WriterFaults = WriterFaults()
    ) throws -> SubnetworkStore {
        if FileManager.default.fileExists(atPath: path) {
            throw CheckpointError.writeFailed(
                path: path, reason: "a file already exists there; remove it or choose another name")
        }
        var bytes = fileMagic
        bytes += le32(2)
        bytes += le32(crc32(bytes))
        let created = ISO8601DateFormatter().string(from: Date())
        let meta = JSONValue.object([
            ("format", "hcore-store"), ("version", 1), ("model_fingerprint", .string(fingerprint)),
            ("layout", .object([("layers", .int(layout.layers)), ("heads", .int(layout.heads)), ("mlps", true)])),
            ("created", .string(created)),
        ])
        let metaOffset = bytes.count
        bytes += block(.meta, Array(meta.compact.utf8))
        let store = SubnetworkStore(
            path: path, fingerprint: fingerprint, layout: layout, created: created, faults: faults)
        store.metaOffset = metaOffset
        bytes += store.footerAndCommit(at: bytes.count)
        try writeNew(bytes, to: path)
        store.committedLength = bytes.count
        let id = try fileIdentity(path)
        store.identity = (id.dev, id.ino)
        return store
    }

    private init(
        path: String, fingerprint: String, layout: StoreLayout, created: String, faults: WriterFaults = WriterFaults()
    ) {
        self.faults = faults
        self.path = path
        self.fingerprint = fingerprint
        self.layout = layout
        self.created = created
    }

    public static func open(path: String, faults: WriterFaults = WriterFaults()) throws -> SubnetworkStore {
        // a create's temporary file or a compaction's, of a writer that died before its rename
        removeStaleTemporaries(of: path, markers: [".tmp-", ".compact-"])
        let store = SubnetworkStore(
            path: path, fingerprint: "", layout: StoreLayout(layers: 0, heads: 0), created: "", faults: faults)
        try store.withLock(LOCK_SH, write: false) { _ in try store.reload() }
        return store
    }

    // MARK: locking

    /// Runs `body` with the store's file open and flock'ed (`LOCK_SH` to read, `LOCK_EX` to write). Closing
    /// the descriptor releases the lock, whatever `body` does.
    private func withLock<T>(_ operation: Int32, write: Bool, _ body: (Int32) throws -> T) throws -> T {
        let fd = Glibc.open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw write
                ? CheckpointError.writeFailed(path: path, reason: reason)
                : CheckpointError.cannotOpen(path: path, reason: reason)
        }
        defer { Glibc.close(fd) }
        while flock(fd, operation) != 0 {
            guard errno == EINTR else {
                throw CheckpointError.writeFailed(
                    path: path, reason: "cannot lock the store: \(String(cString: strerror(errno)))")
            }
        }
        // A compaction may have renamed a new file over the path while this process waited: then the lock
        // (and the descriptor) belong to the old file. Start again on the new one.
        var held = stat()
        guard fstat(fd, &held) == 0, let now = try? fileIdentity(path), UInt64(held.st_dev) == now.dev,
            UInt64(held.st_ino) == now.ino
        else {
            return try withLock(operation, write: write, body)
        }
        return try body(fd)
    }

    /// Re-reads the file's last commit when the file is not the one read last (compaction) or has grown
    /// (another process committed); called holding a lock.
    private func refresh() throws {
        let now = try fileIdentity(path)
        guard now.dev != identity.dev || now.ino != identity.ino || now.size != committedLength else { return }
        try reload()
    }

    private func reload() throws {
        let file = try MappedFile(path: path)
        subnetworks = []
        activationSets = []
        rows = []
        metadataUpdates = []
        recoveryNote = nil
        maskPayloadBytes = 0
        try load(file)
        let id = try fileIdentity(path)
        identity = (id.dev, id.ino)
    }

    // MARK: reading

    private func damage(_ offset: Int?, _ reason: String) -> CheckpointError {
        .malformed(path: path, offset: offset, reason: "store: \(reason)")
    }

    private struct BlockHeader {
        let kind: Kind
        let payloadLength: Int
        let rawLength: Int
        let crc: UInt32
    }

    private enum HeaderRead {
        case ok(BlockHeader)
        case truncated
        case damaged(String)
    }

    private func readHeader(_ f: MappedFile, at o: Int) -> HeaderRead {
        if o + 32 > f.count { return .truncated }
        for k in 0..<4 where f[o + k] != Self.blockMagic[k] { return .damaged("bad block magic") }
        let headerBytes = f.slice(o..<(o + 28))
        guard crc32(headerBytes) == UInt32(f.uint(at: o + 28, size: 4)) else {
            return .damaged("block header checksum mismatch")
        }
        guard let kind = Kind(rawValue: f[o + 4]) else { return .damaged("unknown block kind \(f[o + 4])") }
        let len = f.uint(at: o + 8, size: 8)
        let raw = f.uint(at: o + 16, size: 8)
        guard len <= UInt64(Self.maxPayload), raw <= UInt64(Self.maxUncompressed) else {
            return .damaged("block lengths out of range")
        }
        return .ok(
            BlockHeader(
                kind: kind, payloadLength: Int(len), rawLength: Int(raw), crc: UInt32(f.uint(at: o + 24, size: 4))))
    }

    /// The decompressed payload of the block at `o`, which must be of `kind`.
    private func payload(_ f: MappedFile, at o: Int, kind: Kind) throws -> [UInt8] {
        guard o >= 16, o < f.count else { throw damage(o, "reference to offset \(o) outside the file") }
        switch readHeader(f, at: o) {
        case .truncated: throw damage(o, "block at \(o) is cut off")
        case .damaged(let r): throw damage(o, "\(r) (block at \(o))")
        case .ok(let h):
            guard h.kind == kind else { throw damage(o, "block at \(o) is a \(h.kind) block, expected \(kind)") }
            guard o + 32 + h.payloadLength <= f.count else { throw damage(o, "\(kind) block at \(o) is cut off") }
            let data = f.slice((o + 32)..<(o + 32 + h.payloadLength))
            guard crc32(data) == h.crc else { throw damage(o, "\(kind) block at \(o): payload checksum mismatch") }
            if kind == .commit { return data }
            // A decompressed size far beyond what zstd reaches on hcore's blocks is a bomb, not data.
            guard h.rawLength <= h.payloadLength * 1024 + (1 << 20) else {
                throw damage(o, "\(kind) block at \(o) claims \(h.rawLength) bytes from \(h.payloadLength)")
            }
            let raw: [UInt8]
            do { raw = try Zstd.decompress(data, limit: h.rawLength, name: path) } catch {
                throw damage(o, "\(kind) block at \(o): \(error)")
            }
            guard raw.count == h.rawLength else {
                throw damage(o, "\(kind) block at \(o): decompressed size differs from its header")
            }
            return raw
        }
    }

    private func load(_ f: MappedFile) throws {
        guard f.count >= 16 else {
            throw damage(0, "file is \(f.count) bytes, shorter than the store header (cut during creation?)")
        }
        for k in 0..<8 where f[k] != Self.fileMagic[k] { throw damage(0, "not an hcore store (bad magic)") }
        guard crc32(f.slice(0..<12)) == UInt32(f.uint(at: 12, size: 4)) else {
            throw damage(0, "store header checksum mismatch")
        }
        let version = f.uint(at: 8, size: 4)
        guard version == 1 || version == 2 else {
            throw damage(
                8, "store format version \(version); this hcore reads versions 1 and 2 (a newer hcore wrote it?)")
        }
        formatVersion = Int(version)
        let commitOffset = try lastCommit(f)
        let c = try payload(f, at: commitOffset, kind: .commit)
        guard c.count == 32, let footerOffset = Int(exactly: le64(c, 0)), let seq = Int(exactly: le64(c, 16)),
            let length = Int(exactly: le64(c, 24))
        else {
            throw damage(commitOffset, "commit record fields out of range")
        }
        sequence = seq
        committedLength = commitOffset + 64
        guard length == committedLength else {
            throw damage(commitOffset, "commit record's file length disagrees with its position")
        }
        let footer = try resolveFooter(f, at: footerOffset)
        // Store-level metadata.
        metaOffset = footer.get("meta")?.intValue ?? -1
        let meta = try JSONValue.parse(
            String(decoding: try payload(f, at: metaOffset, kind: .meta), as: UTF8.self), path: path)
        guard let fp = meta.get("model_fingerprint")?.stringValue, let lay = meta.get("layout"),
            let L = lay.get("layers")?.intValue, let H = lay.get("heads")?.intValue, (1...1024).contains(L),
            (1...1024).contains(H)
        else {
            throw damage(metaOffset, "meta block lacks model_fingerprint or layout")
        }
        fingerprint = fp
        layout = StoreLayout(layers: L, heads: H)
        created = meta.get("created")?.stringValue ?? ""
        var entriesCache: [Int: [JSONValue]] = [:]
        try readSubnetworks(f, footer: footer, footerOffset: footerOffset, entriesCache: &entriesCache)
        try readMetadataUpdates(f, footer: footer, footerOffset: footerOffset, entriesCache: &entriesCache)
        for a in footer.get("activations")?.arrayValue ?? [] {
            guard let name = a.get("name")?.stringValue, let o = a.get("offset")?.intValue else {
                throw damage(footerOffset, "bad activations entry")
            }
            activationSets.append((name, o))
        }
    }

    /// The offset of the commit to read: the file's last 64 bytes when they are a commit that says the file
    /// ends there (the usual case), else the last complete commit found block by block (an append was cut).
    private func lastCommit(_ f: MappedFile) throws -> Int {
        var commitOffset: Int? = nil
        if f.count >= 16 + 64, case .ok(let h) = readHeader(f, at: f.count - 64), h.kind == .commit,
            h.payloadLength == 32,
            let c = try? payload(f, at: f.count - 64, kind: .commit), c.count == 32, le64(c, 24) == UInt64(f.count)
        {
            commitOffset = f.count - 64
        }
        if commitOffset == nil {
            // Scan block by block; the last complete commit wins unless something is damaged.
            var o = 16
            var lastCommit: Int? = nil
            scan: while o < f.count {
                switch readHeader(f, at: o) {
                case .truncated: break scan
                case .damaged(let r): throw damage(o, "\(r) at byte \(o)")
                case .ok(let h):
                    if o + 32 + h.payloadLength > f.count { break scan }
                    guard crc32(f.slice((o + 32)..<(o + 32 + h.payloadLength))) == h.crc else {
                        throw damage(o, "\(h.kind) block at \(o): payload checksum mismatch")
                    }
                    if h.kind == .commit { lastCommit = o }
                    o += 32 + h.payloadLength
                }
            }
            guard let lc = lastCommit else {
                throw damage(nil, "no complete commit in the file (cut during creation?)")
            }
            let end = lc + 64
            recoveryNote =
                "the file ends inside an append: read as of the last complete commit at byte \(lc); \(f.count - end) bytes after it are ignored (the next write removes them)"
            commitOffset = lc
        }
        return commitOffset!
    }

    /// The full index as of the footer at `offset`: a full footer as it is; a delta applied, in order, to
    /// the chain of footers it rests on (each base lies before its delta, so the walk ends).
    private func resolveFooter(_ f: MappedFile, at offset: Int) throws -> JSONValue {
        var chain: [(offset: Int, footer: JSONValue, bytes: Int)] = []
        var o = offset
        while true {
            let footer = try JSONValue.parse(
                String(decoding: try payload(f, at: o, kind: .footer), as: UTF8.self), path: path)
            var bytes = 0
            if case .ok(let h) = readHeader(f, at: o) { bytes = h.rawLength }
            chain.append((o, footer, bytes))
            guard let base = footer.get("base")?.intValue else { break }
            guard base < o else { throw damage(o, "delta footer's base \(base) does not precede it") }
            o = base
        }
        lastFooter = offset
        compactedLength = chain.last!.footer.get("compacted_length")?.intValue ?? 0
        lastFullFooterBytes = chain.last!.bytes
        deltaBytesSinceFull = chain.dropLast().reduce(0) { $0 + $1.bytes }
        guard chain.count > 1 else { return chain[0].footer }
        let full = chain.last!.footer
        // A removal drops every row and update of its name made before it. Each entry remembers how many removals
        // of its name preceded it and survives if no more came later: one pass, however long the chain.
        var removals: [String: Int] = [:]
        func tagged(_ list: [JSONValue]) -> [(entry: JSONValue, name: String, removals: Int)] {
            list.map { e in
                let name = e.get("name")?.stringValue ?? ""
                return (e, name, removals[name] ?? 0)
            }
        }
        var rows = tagged(full.get("subnetworks")?.arrayValue ?? [])
        var updates = tagged(full.get("metadata_updates")?.arrayValue ?? [])
        var activations = full.get("activations")?.arrayValue ?? []
        for (_, delta, _) in chain.dropLast().reversed() {
            for name in (delta.get("removed")?.arrayValue ?? []).compactMap(\.stringValue) {
                removals[name, default: 0] += 1
            }
            rows += tagged(delta.get("added")?.arrayValue ?? [])
            updates += tagged(delta.get("metadata_updates")?.arrayValue ?? [])
            if let a = delta.get("activations")?.arrayValue { activations = a }
        }
        func live(_ list: [(entry: JSONValue, name: String, removals: Int)]) -> JSONValue {
            .array(list.filter { $0.removals == removals[$0.name] ?? 0 }.map(\.entry))
        }
        return .object([
            ("sequence", chain[0].footer.get("sequence") ?? .null), ("meta", full.get("meta") ?? .null),
            ("subnetworks", live(rows)), ("activations", .array(activations)), ("metadata_updates", live(updates)),
        ])
    }

    /// The footer's subnetworks, each masks and entries block decoded once.
    private func readSubnetworks(
        _ f: MappedFile, footer: JSONValue, footerOffset: Int, entriesCache: inout [Int: [JSONValue]]
    ) throws {
        var masksCache: [Int: (masks: [[UInt8]], alphas: [[Float]]?)] = [:]
        var names = Set<String>()
        maskPayloadBytes = 0
        for item in footer.get("subnetworks")?.arrayValue ?? [] {
            guard let name = item.get("name")?.stringValue, let mo = item.get("masks")?.intValue,
                let row = item.get("row")?.intValue, let eo = item.get("entries")?.intValue
            else {
                throw damage(footerOffset, "footer entry without name/masks/row/entries")
            }
            guard names.insert(name).inserted else { throw damage(footerOffset, "footer lists '\(name)' twice") }
            if masksCache[mo] == nil {
                let p = try payload(f, at: mo, kind: .masks)
                masksCache[mo] = try decodeMasks(p, at: mo)
                if case .ok(let h) = readHeader(f, at: mo) { maskPayloadBytes += h.payloadLength }
            }
            if entriesCache[eo] == nil {
                let e = try JSONValue.parse(
                    String(decoding: try payload(f, at: eo, kind: .entries), as: UTF8.self), path: path)
                guard let list = e.arrayValue else { throw damage(eo, "entries block is not a list") }
                entriesCache[eo] = list
            }
            let block = masksCache[mo]!
            let entries = entriesCache[eo]!
            guard row >= 0, row < block.masks.count, row < entries.count else {
                throw damage(mo, "row \(row) of '\(name)' is outside its block")
            }
            guard entries[row].get("name")?.stringValue == name else {
                throw damage(eo, "entries row \(row) is not '\(name)'")
            }
            subnetworks.append(
                StoredSubnetwork(
                    name: name, mask: block.masks[row], logAlpha: block.alphas?[row],
                    meta: entries[row].get("meta") ?? .object([])))
            rows.append((name, mo, row, eo))
        }
    }

    /// Metadata updates (`updateMeta`) merged into the subnetworks they name, in commit order.
    private func readMetadataUpdates(
        _ f: MappedFile, footer: JSONValue, footerOffset: Int, entriesCache: inout [Int: [JSONValue]]
    ) throws {
        // Linear in the updates: each entries block grouped by name once, subnetworks found by name.
        let index = positionsByName()
        var grouped: [Int: [String: [[(String, JSONValue)]]]] = [:]
        for u in footer.get("metadata_updates")?.arrayValue ?? [] {
            guard let name = u.get("name")?.stringValue, let o = u.get("offset")?.intValue else {
                throw damage(footerOffset, "bad metadata update entry")
            }
            metadataUpdates.append((name, o))
            if grouped[o] == nil {
                if entriesCache[o] == nil {
                    let e = try JSONValue.parse(
                        String(decoding: try payload(f, at: o, kind: .entries), as: UTF8.self), path: path)
                    entriesCache[o] = e.arrayValue ?? []
                }
                var byName: [String: [[(String, JSONValue)]]] = [:]
                for upd in entriesCache[o]! {
                    if let n = upd.get("name")?.stringValue, let m = upd.get("meta")?.objectValue {
                        byName[n, default: []].append(m)
                    }
                }
                grouped[o] = byName
            }
            guard let i = index[name] else { continue }
            for m in grouped[o]![name] ?? [] { subnetworks[i].meta = subnetworks[i].meta.merging(m) }
        }
    }

    private func decodeMasks(_ p: [UInt8], at o: Int) throws -> (masks: [[UInt8]], alphas: [[Float]]?) {
        guard p.count >= 8 else { throw damage(o, "masks block too short") }
        let n = Int(le32v(p, 0))
        let u = Int(le32v(p, 4))
        guard u == layout.unitCount else {
            throw damage(o, "masks block has \(u) units; the layout has \(layout.unitCount)")
        }
        let rowBytes = (n + 7) / 8
        let bitsEnd = 8 + u * rowBytes
        guard n <= 1 << 24, bitsEnd <= p.count else { throw damage(o, "masks block shorter than its \(n)×\(u) bits") }
        var masks = [[UInt8]](repeating: [UInt8](repeating: 0, count: u), count: n)
        for unit in 0..<u {
            let base = 8 + unit * rowBytes
            for s in 0..<n where p[base + s / 8] >> (s % 8) & 1 == 1 { masks[s][unit] = 1 }
        }
        var alphas: [[Float]]? = nil
        if bitsEnd < p.count {
            guard p[bitsEnd] == 1, p.count == bitsEnd + 1 + n * u * 4 else {
                throw damage(o, "masks block: bad log-alpha section")
            }
            let count = n * u
            var values = [UInt32](repeating: 0, count: count)
            for plane in 0..<4 {
                let base = bitsEnd + 1 + plane * count
                for i in 0..<count { values[i] |= UInt32(p[base + i]) << (8 * UInt32(plane)) }
            }
            alphas = (0..<n).map { s in (0..<u).map { Float(bitPattern: values[s * u + $0]) } }
        }
        return (masks, alphas)
    }

    public func activationSet(_ name: String) throws -> [UInt8] {
        guard let a = activationSets.last(where: { $0.name == name }) else {
            throw CheckpointError.missingTensor(path: path, name: "activation set '\(name)'")
        }
        let name = a.name
        return try withLock(LOCK_SH, write: false) { _ in
            try refresh()
            guard let a = activationSets.last(where: { $0.name == name }) else {
                throw CheckpointError.notFound(
                    path: path, reason: "activation set '\(name)' was removed by another process")
            }
            let p = try payload(try MappedFile(path: path), at: a.offset, kind: .activations)
            guard let nl = p.firstIndex(of: 0x0A) else {
                throw damage(a.offset, "activations block without header line")
            }
            return Array(p[(nl + 1)...])
        }
    }

    // MARK: writing

    package static func block(_ kind: Kind, _ raw: [UInt8], maximal: Bool = false) -> [UInt8] {
        // Level 19 where it pays and lasts: masks, entries and activation sets of a compaction or of a large
        // batch. Footers are superseded by the next commit and small blocks gain little, so those take level 3
        // (level 19 on every full footer made a store written one subnetwork at a time 15× slower to write).
        let lasting = kind != .footer && (maximal || raw.count >= 16 << 10)
        let data = kind == .commit ? raw : Zstd.compress(raw, level: lasting ? 19 : 3)
        var h =
            blockMagic + [kind.rawValue, 0, 0, 0] + le64(UInt64(data.count)) + le64(UInt64(raw.count))
            + le32(crc32(data))
        h += le32(crc32(h))
        return h + data
    }

    private func footerAndCommit(at offset: Int) -> [UInt8] {
        func row(_ r: (name: String, masks: Int, row: Int, entries: Int)) -> JSONValue {
            .object([
                ("name", .string(r.name)), ("masks", .int(r.masks)), ("row", .int(r.row)), ("entries", .int(r.entries)),
            ])
        }
        func update(_ u: (name: String, offset: Int)) -> JSONValue {
            .object([("name", .string(u.name)), ("offset", .int(u.offset))])
        }
        let activations = JSONValue.array(
            activationSets.map { .object([("name", .string($0.name)), ("offset", .int($0.offset))]) })
        var fb: [UInt8] = []
        if formatVersion >= 2, let base = lastFooter, !forceFullFooter {
            var fields: [(String, JSONValue)] = [
                ("sequence", .int(sequence + 1)), ("base", .int(base)),
                ("added", .array(pendingAdded.map(row))), ("removed", .array(pendingRemoved.map { .string($0) })),
                ("metadata_updates", .array(pendingUpdates.map(update))),
            ]
            if pendingActivations { fields.append(("activations", activations)) }
            // Sizes as a reader parses them (uncompressed): deltas are kept while together they are no larger
            // than the full footer they rest on.
            let raw = Array(JSONValue.object(fields).compact.utf8)
            if deltaBytesSinceFull + raw.count <= lastFullFooterBytes {
                fb = Self.block(.footer, raw)
                deltaBytesSinceFull += raw.count
            }
        }
        if fb.isEmpty {
            let footer = JSONValue.object([
                ("sequence", .int(sequence + 1)), ("meta", .int(metaOffset)), ("subnetworks", .array(rows.map(row))),
                ("activations", activations), ("metadata_updates", .array(metadataUpdates.map(update))),
                ("compacted_length", .int(compactedLength)),
            ])
            let raw = Array(footer.compact.utf8)
            fb = Self.block(.footer, raw)
            lastFullFooterBytes = raw.count
            deltaBytesSinceFull = 0
        }
        lastFooter = offset
        forceFullFooter = false
        (pendingAdded, pendingRemoved, pendingUpdates, pendingActivations) = ([], [], [], false)
        let commitAt = offset + fb.count
        let c = le64(UInt64(offset)) + le64(UInt64(fb.count)) + le64(UInt64(sequence + 1)) + le64(UInt64(commitAt + 64))
        return fb + Self.block(.commit, c)
    }

    /// One write transaction: under the exclusive lock, with the state refreshed to the file's last commit,
    /// appends the blocks `build` returns (given the file offset where they start; it validates against the
    /// refreshed state and may throw), then a footer and a commit, and fsyncs. On failure the file is cut back
    /// to the last commit and the in-memory state restored.
    /// `committed` runs once the commit is durable and before a compaction: changes to the in-memory state made
    /// there need no copy for a rollback (`updateMeta` merges its keys there).
    private func append(_ build: (Int) throws -> [UInt8], committed: () -> Void = {}) throws {
        try withLock(LOCK_EX, write: true) { fd in
            try refresh()
            try appendLocked(fd, build)
            committed()
            if formatVersion >= 2, committedLength > 2 * compactedLength + Self.compactionSlack { try compactLocked() }
        }
    }

    private func appendLocked(_ fd: Int32, _ build: (Int) throws -> [UInt8]) throws {
        let saved = (rows, metadataUpdates, activationSets, subnetworks, sequence, maskPayloadBytes)
        let savedIndex = (lastFooter, lastFullFooterBytes, deltaBytesSinceFull)
        do {
            // Drop an uncommitted tail left by a writer that died (we hold the lock: nobody is appending).
            guard ftruncate(fd, off_t(committedLength)) == 0 else {
                throw CheckpointError.writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
            var bytes = try build(committedLength)
            bytes += footerAndCommit(at: committedLength + bytes.count)
            var limit = bytes.count
            if let fail = faults.failWritesAfterBytes { limit = min(limit, fail) }
            let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, limit, off_t(committedLength)) }
            try reach(.written)
            guard written == bytes.count, fsync(fd) == 0 else {
                _ = ftruncate(fd, off_t(committedLength))
                throw CheckpointError.writeFailed(
                    path: path, reason: "short write (disk full?); the store is unchanged")
            }
            try reach(.synced)
            committedLength += bytes.count
            sequence += 1
        } catch {
            (rows, metadataUpdates, activationSets, subnetworks, sequence, maskPayloadBytes) = saved
            (lastFooter, lastFullFooterBytes, deltaBytesSinceFull) = savedIndex
            (pendingAdded, pendingRemoved, pendingUpdates, pendingActivations) = ([], [], [], false)
            throw error
        }
    }

    /// Adds subnetworks in one append (one masks block, one entries block). Names must be new.
    public func add(_ subs: [StoredSubnetwork]) throws {
        guard !subs.isEmpty else { return }
        var seen = Set<String>()
        let U = layout.unitCount
        for s in subs {
            guard !s.name.isEmpty else {
                throw CheckpointError.malformed(path: path, offset: nil, reason: "a subnetwork needs a non-empty name")
            }
            guard seen.insert(s.name).inserted else {
                throw CheckpointError.malformed(
                    path: path, offset: nil, reason: "subnetwork '\(s.name)' is given twice")
            }
            guard s.mask.count == U, s.mask.allSatisfy({ $0 <= 1 }) else {
                throw CheckpointError.malformed(
                    path: path, offset: nil,
                    reason:
                        "'\(s.name)': expected \(U) binary mask values (\(layout.layers)×\(layout.heads) heads + \(layout.layers) MLPs)"
                )
            }
            if let a = s.logAlpha, a.count != U || a.contains(where: { !$0.isFinite }) {
                throw CheckpointError.malformed(
                    path: path, offset: nil, reason: "'\(s.name)': log_alpha needs \(U) finite values")
            }
        }
        let withAlphas = subs.allSatisfy { $0.logAlpha != nil }
        let n = subs.count
        let rowBytes = (n + 7) / 8
        var raw = le32(UInt32(n)) + le32(UInt32(U))
        var bits = [UInt8](repeating: 0, count: U * rowBytes)
        for (s, sub) in subs.enumerated() {
            for u in 0..<U where sub.mask[u] == 1 { bits[u * rowBytes + s / 8] |= 1 << (s % 8) }
        }
        raw += bits
        if withAlphas {
            raw.append(1)
            let values = subs.flatMap { $0.logAlpha!.map(\.bitPattern) }
            for plane in 0..<4 { raw += values.map { UInt8(($0 >> (8 * UInt32(plane))) & 0xFF) } }
        }
        let entries = JSONValue.array(subs.map { .object([("name", .string($0.name)), ("meta", $0.meta)]) })
        try append { start in
            // Checked against the state as of the last commit (another process may have added these names).
            let stored = Set(subnetworks.map(\.name))
            if let clash = subs.first(where: { stored.contains($0.name) }) {
                throw CheckpointError.malformed(
                    path: path, offset: nil, reason: "subnetwork '\(clash.name)' already exists in the store")
            }
            let mb = Self.block(.masks, raw, maximal: compressMaximally)
            let eb = Self.block(.entries, Array(entries.compact.utf8), maximal: compressMaximally)
            for (i, s) in subs.enumerated() {
                rows.append((s.name, start, i, start + mb.count))
                pendingAdded.append((s.name, start, i, start + mb.count))
                subnetworks.append(
                    StoredSubnetwork(name: s.name, mask: s.mask, logAlpha: withAlphas ? s.logAlpha : nil, meta: s.meta))
            }
            maskPayloadBytes += mb.count - 32
            return mb + eb
        }
    }

    public func remove(_ names: [String]) throws {
        try append { _ in
            let stored = Set(subnetworks.map(\.name))
            if let missing = names.first(where: { !stored.contains($0) }) {
                throw CheckpointError.notFound(
                    path: path, reason: "no subnetwork '\(missing)' (see `hcore store ls \(path)`)")
            }
            pendingRemoved = names
            rows.removeAll { names.contains($0.name) }
            subnetworks.removeAll { names.contains($0.name) }
            metadataUpdates.removeAll { names.contains($0.name) }
            return []
        }
    }

    /// Each subnetwork's position by name (rebuilt when the list changed).
    private func positionsByName() -> [String: Int] {
        if positions.version != subnetworksVersion {
            positions = (
                subnetworksVersion,
                Dictionary(
                    subnetworks.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
            )
        }
        return positions.byName
    }

    /// Merges keys into subnetworks' metadata (e.g. metrics written back by `hcore eval`).
    public func updateMeta(_ updates: [(name: String, meta: [(String, JSONValue)])]) throws {
        let list = JSONValue.array(updates.map { .object([("name", .string($0.name)), ("meta", .object($0.meta))]) })
        var index: [String: Int] = [:]
        try append(
            { start in
                index = positionsByName()
                if let missing = updates.first(where: { index[$0.name] == nil }) {
                    throw CheckpointError.notFound(
                        path: path, reason: "no subnetwork '\(missing.name)' (removed by another process?)")
                }
                for u in updates {
                    metadataUpdates.append((u.name, start))
                    pendingUpdates.append((u.name, start))
                }
                return Self.block(.entries, Array(list.compact.utf8))
            },
            committed: {
                for u in updates {
                    subnetworks[index[u.name]!].meta = subnetworks[index[u.name]!].meta.merging(u.meta)
                }
                positions.version = subnetworksVersion  // metadata changed; names and positions did not
            })
    }

    /// Stores a named mean-activation set (safetensors bytes); a later set of the same name replaces it.
    public func addActivations(name: String, safetensors: [UInt8]) throws {
        let raw = Array((JSONValue.object([("name", .string(name))]).compact + "\n").utf8) + safetensors
        try append { start in
            activationSets.removeAll { $0.name == name }
            activationSets.append((name, start))
            pendingActivations = true
            return Self.block(.activations, raw, maximal: compressMaximally)
        }
    }

    /// Rewrites the live state into a fresh file (temp + fsync + rename), under the exclusive lock so that
    /// no commit of another process is lost in between.
    public func compact() throws {
        try withLock(LOCK_EX, write: true) { _ in
            try refresh()
            try compactLocked()
        }
    }

    /// Compaction, the lock held: the live activation sets and subnetworks into a new file, one more commit
    /// that records the new file's length (the next compaction waits until the file has doubled), rename.
    private func compactLocked() throws {
        let tmp = path + ".compact-\(getpid())"
        try? FileManager.default.removeItem(atPath: tmp)
        let fresh = try SubnetworkStore.create(path: tmp, fingerprint: fingerprint, layout: layout)
        // The compacted store keeps the old file's permissions (a group may share it).
        var old = stat()
        if stat(path, &old) == 0 { chmod(tmp, old.st_mode & 0o7777) }
        fresh.compactedLength = Int.max / 4  // no compaction of the file being built
        fresh.compressMaximally = true
        do {
            let f = try MappedFile(path: path)
            for a in activationSets {
                let p = try payload(f, at: a.offset, kind: .activations)
                let nl = p.firstIndex(of: 0x0A) ?? 0
                try fresh.addActivations(name: a.name, safetensors: Array(p[(nl + 1)...]))
            }
            try fresh.add(subnetworks)
            fresh.compactedLength = fresh.committedLength + 2 * 4096  // + this last footer and commit, roughly
            fresh.forceFullFooter = true
            try fresh.append { _ in [] }
            try reach(.compactionWritten)
            guard rename(tmp, path) == 0 else {
                throw CheckpointError.writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
            try reach(.compactionRenamed)
            try syncDirectory(of: path)
        } catch {
            if !(error is SimulatedCrash) { unlink(tmp) }
            throw error
        }
        try reload()
    }

    public var fileSize: Int { committedLength }
}

func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * UInt32($0))) & 0xFF) } }
package func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8((v >> (8 * UInt64($0))) & 0xFF) } }
func le64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
func le32v(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }

/// (device, inode, size) of the file at `path`.
func fileIdentity(_ path: String) throws -> (dev: UInt64, ino: UInt64, size: Int) {
    var st = stat()
    guard stat(path, &st) == 0 else {
        throw CheckpointError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
    }
    return (UInt64(st.st_dev), UInt64(st.st_ino), Int(st.st_size))
}
