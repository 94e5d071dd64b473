import Foundation

/// Any JSON value: GraphQL variables, the JSON scalar, raw responses.
public enum JSONValue: Codable, Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// The member of an object, or nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .number(let d): return Int(d)
        default: return nil
        }
    }
}

/// A field of an update input that can be left unchanged (`absent`),
/// cleared (`null`) or set (`value`): absent and null mean different things.
public enum Patch<Wrapped> {
    case absent
    case null
    case value(Wrapped)
}

extension Patch: Sendable where Wrapped: Sendable {}

/// The direction of an ordering.
public enum OrderDirection: String, Codable, Sendable {
    case asc = "ASC"
    case desc = "DESC"
}

/// Encoding and decoding as the server speaks it: Time is RFC 3339.
public enum KilnCoding {
    /// RFC 3339 text of a date, with milliseconds.
    public static func string(from date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    /// Parses RFC 3339 text with any number of fractional digits.
    public static func date(from text: String) -> Date? {
        var s = text
        if let dot = s.firstIndex(of: ".") {
            var end = s.index(after: dot)
            while end < s.endIndex, s[end].isNumber { end = s.index(after: end) }
            let digits = s[s.index(after: dot)..<end]
            s.replaceSubrange(dot..<end, with: "." + String((String(digits) + "000").prefix(3)))
        }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let s = try c.decode(String.self)
            guard let date = KilnCoding.date(from: s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 time: \(s)")
            }
            return date
        }
        return d
    }

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(KilnCoding.string(from: date))
        }
        return e
    }

    /// Decodes a response value as `T`.
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        do {
            let data = try JSONEncoder().encode(value)
            return try decoder().decode(T.self, from: data)
        } catch {
            throw KilnError.decoding(message: "cannot decode \(T.self): \(error)")
        }
    }

    /// Decodes `data[field]` of a response.
    public static func field<T: Decodable>(_ type: T.Type, _ field: String, in data: [String: JSONValue]) throws -> T {
        guard let v = data[field] else { throw KilnError.decoding(message: "response has no \(field)") }
        return try decode(T.self, from: v)
    }
}
