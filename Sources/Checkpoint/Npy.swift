// NumPy's .npy format 1.0 (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html): a magic
// string, a little-endian header length, a Python-literal header padded so the data starts 64-aligned.

/// A .npy file holding `data` (already in `descr`'s byte layout) with the given shape.
public func npyFile(descr: String, shape: [Int], data: [UInt8]) -> [UInt8] {
    let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    let n = header.utf8.count
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + data
}
