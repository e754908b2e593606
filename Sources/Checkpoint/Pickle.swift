// A pickle reader that understands only what a PyTorch state dict needs and executes nothing.
//
// pickle is a small stack machine whose GLOBAL/REDUCE opcodes normally import and call arbitrary
// Python callables — that is how a malicious .bin runs `os.system`. Here there is no Python: GLOBAL
// yields a symbolic name, and REDUCE on it is interpreted by hand for the few names a state dict uses:
//   collections.OrderedDict()                 → an empty dict
//   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)   → a tensor reference
//   torch._utils._rebuild_tensor(storage, offset, size, stride)         → a tensor reference
//   torch._utils._rebuild_parameter(tensor, requires_grad, hooks)       → the tensor
//   torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage → dtype tokens for storages
//   numpy.core.multiarray._reconstruct / numpy.dtype (+ BUILD)           → a numpy array (numeric, C order)
// Any other global is refused by name, at the moment it is read. Persistent ids (BINPERSID) become
// storage references ('storage', type, key, location, numel) resolved against the zip's data/ entries.

public struct StorageRef: Equatable, Sendable {
    public let dtype: DType
    public let key: String
    public let elementCount: Int
}

public struct TensorRef: Equatable, Sendable {
    public let storage: StorageRef
    public let offset: Int
    public let shape: [Int]
    public let stride: [Int]
}

public indirect enum PickleValue: Equatable, Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list([PickleValue])
    case dict([PickleDictEntry])
    case global(String)
    case storageType(DType)
    case storage(StorageRef)
    case tensor(TensorRef)
    /// A numpy array (`numpy.core.multiarray._reconstruct` + BUILD), its data little-endian and C-ordered.
    case ndarray(NumpyArray)
    /// A numpy dtype (`numpy.dtype('f4', False, True)`).
    case numpyDType(DType)
    case mark
}

/// A numpy array read from a pickle: dtype nil until its BUILD state has been applied.
public struct NumpyArray: Equatable, Sendable {
    public var dtype: DType?
    public var shape: [Int]
    public var data: [UInt8]
}

public struct PickleDictEntry: Equatable, Sendable {
    public var key: PickleValue
    public var value: PickleValue
}

public struct Unpickler {
    public static let allowedGlobals: Set<String> = [
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
        // numpy arrays, as pickle.dump writes them (numpy 1.x `numpy.core`, numpy 2.x `numpy._core`)
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    ]
    /// numpy dtype codes → element type (native little-endian on every platform hcore runs on).
    static let numpyTypes: [String: DType] = [
        "f4": .f32, "f8": .f64, "f2": .f16, "i8": .i64, "i4": .i32, "i2": .i16, "i1": .i8, "u1": .u8, "b1": .bool,
    ]
    static let storageTypes: [String: DType] = [
        "torch.FloatStorage": .f32, "torch.HalfStorage": .f16, "torch.BFloat16Storage": .bf16,
        "torch.DoubleStorage": .f64, "torch.LongStorage": .i64, "torch.IntStorage": .i32,
        "torch.ShortStorage": .i16, "torch.CharStorage": .i8, "torch.ByteStorage": .u8, "torch.BoolStorage": .bool,
    ]
    /// Bounds against hostile inputs that are valid pickle but absurd: stack and memo sizes, how deeply
    /// containers nest (a state dict nests 4 levels; deeper values would also overflow the native stack
    /// when compared or freed), and the total work — elements copied into containers — which may not
    /// exceed a multiple of the file's size (quadratic DUP/APPEND or SETITEM games end here, in time).
    static let maxStack = 1 << 20
    static let maxMemo = 1 << 22
    static let maxDepth = 64
    static func workBudget(bytes: Int) -> Int { 64 * bytes + (1 << 20) }

    let bytes: [UInt8]
    let path: String

    public init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    public func load() throws -> PickleValue {
        var stack: [PickleValue] = []
        var depths: [Int] = []  // nesting depth of each stack entry
        var memo: [Int: (PickleValue, Int)] = [:]
        var pos = 0
        var work = 0
        var lastPoppedDepth = 0  // depth of what pop()/popToMark() just removed
        let budget = Self.workBudget(bytes: bytes.count)
        func fail(_ reason: String) -> CheckpointError {
            .malformed(path: path, offset: pos, reason: "pickle: " + reason)
        }
        func need(_ n: Int) throws {
            guard n >= 0, n <= bytes.count - pos else { throw fail("truncated (needs \(n) more bytes)") }
        }
        func u(_ n: Int) throws -> Int {
            try need(n)
            var v = 0
            for i in 0..<n { v |= Int(bytes[pos + i]) << (8 * i) }
            pos += n
            return v
        }
        func pop() throws -> PickleValue {
            guard let v = stack.popLast() else { throw fail("stack underflow") }
            lastPoppedDepth = depths.removeLast()
            return v
        }
        func popToMark() throws -> [PickleValue] {
            guard
                let m = stack.lastIndex(where: {
                    if case .mark = $0 { return true }
                    return false
                })
            else { throw fail("no MARK on the stack") }
            let items = Array(stack[(m + 1)...])
            lastPoppedDepth = depths[(m + 1)...].max() ?? 0
            stack.removeSubrange(m...)
            depths.removeSubrange(m...)
            try spend(items.count)
            return items
        }
        /// Pushes `v`; a container's depth is one more than its deepest element's (`childDepth`).
        func push(_ v: PickleValue, childDepth: Int? = nil) throws {
            guard stack.count < Self.maxStack else { throw fail("stack deeper than \(Self.maxStack)") }
            let d = childDepth.map { $0 + 1 } ?? 0
            guard d <= Self.maxDepth else { throw fail("containers nested more than \(Self.maxDepth) deep") }
            stack.append(v)
            depths.append(d)
        }
        func spend(_ n: Int) throws {
            work += n
            guard work <= budget else {
                throw fail(
                    "the pickle does more work than a file of \(bytes.count) bytes can describe (nested copies); refused"
                )
            }
        }
        func text(_ n: Int) throws -> String {
            try need(n)
            guard let s = String(validating: bytes[pos..<(pos + n)], as: UTF8.self) else {
                throw fail("string is not UTF-8")
            }
            pos += n
            return s
        }
        func line() throws -> String {
            guard let end = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("unterminated line") }
            guard let s = String(validating: bytes[pos..<end], as: UTF8.self) else { throw fail("line is not UTF-8") }
            pos = end + 1
            return s
        }
        func global(_ module: String, _ name: String, at start: Int) throws -> PickleValue {
            let full = "\(module).\(name)"
            if let d = Self.storageTypes[full] { return .storageType(d) }
            guard Self.allowedGlobals.contains(full) else {
                throw CheckpointError.forbiddenGlobal(path: path, offset: start, name: full)
            }
            return .global(full)
        }
        func memoize(_ key: Int) throws {
            guard let top = stack.last else { throw fail("PUT on an empty stack") }
            guard memo.count < Self.maxMemo else { throw fail("memo larger than \(Self.maxMemo)") }
            memo[key] = (top, depths.last!)
        }

        while true {
            let start = pos
            try need(1)
            let op = bytes[pos]
            pos += 1
            switch op {
            case 0x80: _ = try u(1)  // PROTO
            case 0x95: _ = try u(8)  // FRAME (length hint)
            case 0x2E: return try pop()  // STOP
            case 0x28: try push(.mark)  // MARK
            case 0x7D: try push(.dict([]), childDepth: 0)  // EMPTY_DICT
            case 0x5D: try push(.list([]), childDepth: 0)  // EMPTY_LIST
            case 0x29: try push(.tuple([]), childDepth: 0)  // EMPTY_TUPLE
            case 0x74:
                let items = try popToMark()
                try push(.tuple(items), childDepth: lastPoppedDepth)  // TUPLE
            case 0x85:
                let a = try pop()
                try push(.tuple([a]), childDepth: lastPoppedDepth)  // TUPLE1
            case 0x86:  // TUPLE2
                let b = try pop()
                let db = lastPoppedDepth
                let a = try pop()
                try push(.tuple([a, b]), childDepth: max(db, lastPoppedDepth))
            case 0x87:  // TUPLE3
                let c = try pop()
                let dc = lastPoppedDepth
                let b = try pop()
                let db = lastPoppedDepth
                let a = try pop()
                try push(.tuple([a, b, c]), childDepth: max(dc, db, lastPoppedDepth))
            case 0x4E: try push(.none)  // NONE
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false))  // NEWFALSE
            case 0x4B: try push(.int(try u(1)))  // BININT1
            case 0x4D: try push(.int(try u(2)))  // BININT2
            case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try u(4)))))  // BININT
            case 0x8A:  // LONG1
                let n = try u(1)
                guard n <= 8 else { throw fail("LONG1 of \(n) bytes is too large") }
                try need(n)
                var v: UInt64 = 0
                for i in 0..<n { v |= UInt64(bytes[pos + i]) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && bytes[pos + n - 1] & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }
                pos += n
                try push(.int(Int(Int64(bitPattern: v))))
            case 0x47:  // BINFLOAT (big-endian)
                try need(8)
                var v: UInt64 = 0
                for i in 0..<8 { v = v << 8 | UInt64(bytes[pos + i]) }
                pos += 8
                try push(.float(Double(bitPattern: v)))
            case 0x58: try push(.string(try text(try u(4))))  // BINUNICODE
            case 0x8C: try push(.string(try text(try u(1))))  // SHORT_BINUNICODE
            case 0x8D:  // BINUNICODE8
                let n = try u(8)
                try push(.string(try text(n)))
            case 0x54, 0x55, 0x42, 0x43:  // BINSTRING, SHORT_BINSTRING, BINBYTES, SHORT_BINBYTES
                let n = try u(op == 0x55 || op == 0x43 ? 1 : 4)
                try need(n)
                let b = Array(bytes[pos..<(pos + n)])
                pos += n
                try push(.bytes(b))
            case 0x71: try memoize(try u(1))  // BINPUT
            case 0x72: try memoize(try u(4))  // LONG_BINPUT
            case 0x94: try memoize(memo.count)  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let k = try u(op == 0x68 ? 1 : 4)
                guard let (v, d) = memo[k] else { throw fail("memo key \(k) was never stored") }
                try push(v, childDepth: d > 0 ? d - 1 : nil)
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line()
                let name = try line()
                try push(try global(module, name, at: start))
            case 0x93:  // STACK_GLOBAL
                let name = try pop()
                let module = try pop()
                guard case .string(let n) = name, case .string(let m) = module else {
                    throw fail("STACK_GLOBAL needs two strings")
                }
                try push(try global(m, n, at: start))
            case 0x51:  // BINPERSID
                try push(try persistentStorage(try pop(), at: start))
            case 0x52:  // REDUCE
                let args = try pop()
                let da = lastPoppedDepth
                let callable = try pop()
                try push(try reduce(callable, args, at: start), childDepth: da)
            case 0x62:  // BUILD: state ignored (OrderedDict._metadata,
                let state = try pop()  // tensor hooks) except a numpy array's or dtype's
                guard let top = stack.last else { throw fail("BUILD on an empty stack") }
                if case .ndarray(let a) = top, a.dtype == nil {
                    stack[stack.count - 1] = .ndarray(try buildArray(state, at: start))
                }
                if case .numpyDType = top { try checkByteOrder(state, at: start) }
            case 0x73:  // SETITEM
                let v = try pop()
                let dv = lastPoppedDepth
                let k = try pop()
                try setItems([k, v], childDepth: max(dv, lastPoppedDepth), at: start)
            case 0x75:  // SETITEMS
                let items = try popToMark()
                try setItems(items, childDepth: lastPoppedDepth, at: start)
            case 0x61:  // APPEND
                let v = try pop()
                let dv = lastPoppedDepth
                guard case .list(var l) = try pop() else { throw fail("APPEND to a non-list") }
                let dl = lastPoppedDepth
                try spend(l.count + 1)
                l.append(v)
                try push(.list(l), childDepth: max(dv, dl - 1))
            case 0x65:  // APPENDS
                let items = try popToMark()
                let di = lastPoppedDepth
                guard case .list(var l) = try pop() else { throw fail("APPENDS to a non-list") }
                let dl = lastPoppedDepth
                try spend(l.count + items.count)
                l += items
                try push(.list(l), childDepth: max(di, dl - 1))
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popToMark()  // POP_MARK
            case 0x32:  // DUP
                guard let t = stack.last else { throw fail("DUP on an empty stack") }
                let d = depths.last!
                try push(t, childDepth: d > 0 ? d - 1 : nil)
            default:
                throw CheckpointError.unsupported(
                    path: path,
                    reason: String(
                        format:
                            "pickle opcode 0x%02x at byte %d is outside the state-dict subset hcore reads (it may instantiate objects); re-save the weights as safetensors",
                        op, start))
            }
        }

        /// Keys are strings or integers (what state dicts and their metadata use), so a key is found through
        /// a hash index in constant time, never by comparing deep values.
        func setItems(_ items: [PickleValue], childDepth: Int, at start: Int) throws {
            guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
            guard case .dict(var d) = try pop() else { throw fail("SETITEM(S) on a non-dict") }
            let dd = lastPoppedDepth
            try spend(d.count + items.count)
            func key(_ v: PickleValue) throws -> String {
                switch v {
                case .string(let s): return "s" + s
                case .int(let i): return "i\(i)"
                default: throw fail("dict key that is neither a string nor an integer")
                }
            }
            var index = [String: Int](minimumCapacity: d.count + items.count / 2)
            for (j, e) in d.enumerated() { index[try key(e.key)] = j }
            var i = 0
            while i < items.count {
                let k = try key(items[i])
                if let j = index[k] {
                    d[j].value = items[i + 1]
                } else {
                    index[k] = d.count
                    d.append(PickleDictEntry(key: items[i], value: items[i + 1]))
                }
                i += 2
            }
            try push(.dict(d), childDepth: max(childDepth, dd - 1))
        }
    }

    private func persistentStorage(_ pid: PickleValue, at start: Int) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count == 5, t[0] == .string("storage"),
            case .storageType(let dtype) = t[1], case .string(let key) = t[2], case .int(let n) = t[4], n >= 0
        else {
            throw CheckpointError.malformed(
                path: path, offset: start,
                reason: "pickle: persistent id is not ('storage', <type>, key, location, numel)")
        }
        return .storage(StorageRef(dtype: dtype, key: key, elementCount: n))
    }

    /// A numpy array's state: (version, shape, dtype, is_fortran, raw bytes), every count checked against the data.
    private func buildArray(_ state: PickleValue, at start: Int) throws -> NumpyArray {
        func fail(_ r: String) -> CheckpointError {
            .malformed(path: path, offset: start, reason: "pickle: numpy array " + r)
        }
        guard case .tuple(let t) = state, t.count == 5, case .tuple(let shapeV) = t[1],
            case .numpyDType(let dtype) = t[2], case .bool(let fortran) = t[3]
        else {
            throw fail("state is not (version, shape, dtype, is_fortran, data)")
        }
        guard case .bytes(let data) = t[4] else {
            throw fail("holds Python objects instead of raw data (only numeric arrays are read)")
        }
        let shape = try shapeV.map { v -> Int in
            guard case .int(let i) = v, i >= 0 else { throw fail("has a bad dimension") }
            return i
        }
        var count = 1
        for n in shape {
            let (c, o) = count.multipliedReportingOverflow(by: n)
            guard !o else { throw fail("is too large") }
            count = c
        }
        let (bytes, o) = count.multipliedReportingOverflow(by: dtype.size)
        guard !o, bytes == data.count else {
            throw fail(
                "of shape \(shape) (\(dtype.rawValue)) needs \(o ? -1 : bytes) bytes of data, the pickle has \(data.count)"
            )
        }
        guard !fortran || shape.filter({ $0 > 1 }).count <= 1 else {
            throw fail("is Fortran-ordered; save it with numpy.ascontiguousarray")
        }
        return NumpyArray(dtype: dtype, shape: shape, data: data)
    }

    /// A dtype's state (version, byte order, …): big-endian data is refused rather than misread.
    private func checkByteOrder(_ state: PickleValue, at start: Int) throws {
        guard case .tuple(let t) = state, t.count >= 2, case .string(let order) = t[1], ["<", "|", "="].contains(order)
        else {
            throw CheckpointError.malformed(
                path: path, offset: start,
                reason: "pickle: numpy dtype that is not little-endian (byte order must be '<', '|' or '=')")
        }
    }

    private func reduce(_ callable: PickleValue, _ args: PickleValue, at start: Int) throws -> PickleValue {
        func fail(_ r: String) -> CheckpointError { .malformed(path: path, offset: start, reason: "pickle: " + r) }
        guard case .global(let name) = callable else { throw fail("REDUCE on something that is not an allowed global") }
        guard case .tuple(let a) = args else { throw fail("REDUCE arguments are not a tuple") }
        switch name {
        case "collections.OrderedDict":
            guard a.isEmpty else { throw fail("OrderedDict with arguments") }
            return .dict([])
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard a.count >= 4, case .storage(let s) = a[0], case .int(let offset) = a[1],
                case .tuple(let sizeV) = a[2], case .tuple(let strideV) = a[3]
            else {
                throw fail("\(name) arguments are not (storage, offset, size, stride, …)")
            }
            let shape = try sizeV.map { v -> Int in
                guard case .int(let i) = v, i >= 0 else { throw fail("bad tensor size") }
                return i
            }
            let stride = try strideV.map { v -> Int in
                guard case .int(let i) = v else { throw fail("bad tensor stride") }
                return i
            }
            guard shape.count == stride.count, offset >= 0 else { throw fail("size and stride differ in length") }
            return .tensor(TensorRef(storage: s, offset: offset, shape: shape, stride: stride))
        case "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct":
            guard a.count == 3, a[0] == .global("numpy.ndarray") else {
                throw fail("_reconstruct of something other than numpy.ndarray")
            }
            return .ndarray(NumpyArray(dtype: nil, shape: [0], data: []))
        case "numpy.dtype":
            guard let first = a.first, case .string(let code) = first, let d = Self.numpyTypes[code] else {
                throw fail(
                    "numpy dtype \(a.first.map { "\($0)" } ?? "?") is not one of \(Self.numpyTypes.keys.sorted().joined(separator: ", "))"
                )
            }
            return .numpyDType(d)
        case "torch._utils._rebuild_parameter":
            guard let first = a.first, case .tensor = first else { throw fail("_rebuild_parameter without a tensor") }
            return first
        default:
            throw CheckpointError.forbiddenGlobal(path: path, offset: start, name: name)
        }
    }
}
