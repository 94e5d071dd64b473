import Foundation

/// Relay page information of a list call.
public struct PageInfo: Codable, Hashable, Sendable {
    public let hasNextPage: Bool
    public let hasPreviousPage: Bool
    public let startCursor: String?
    public let endCursor: String?
}

/// One page of a list: the records, their cursors, and how to go on.
public struct Page<Item: Decodable & Sendable>: Sendable {
    public let items: [Item]
    public let cursors: [String]
    public let pageInfo: PageInfo
    /// How many records match the filter in all.
    public let totalCount: Int

    /// The cursor to pass as `after` for the next page, or nil on the last page.
    public var nextCursor: String? { pageInfo.hasNextPage ? pageInfo.endCursor : nil }

    static func decode(_ connection: JSONValue?) throws -> Page<Item> {
        guard let connection = connection else { throw KilnError.decoding(message: "response has no connection") }
        var items: [Item] = []
        var cursors: [String] = []
        if case .array(let edges)? = connection["edges"] {
            for edge in edges {
                guard let node = edge["node"], node != .null else { continue }
                items.append(try KilnCoding.decode(Item.self, from: node))
                cursors.append(edge["cursor"]?.stringValue ?? "")
            }
        }
        guard let info = connection["pageInfo"], let total = connection["totalCount"]?.intValue else {
            throw KilnError.decoding(message: "connection without pageInfo or totalCount")
        }
        return Page(items: items, cursors: cursors, pageInfo: try KilnCoding.decode(PageInfo.self, from: info), totalCount: total)
    }
}
