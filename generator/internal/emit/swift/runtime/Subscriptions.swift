import Foundation

/// Subscriptions over graphql-transport-ws (URLSessionWebSocketTask). Each
/// subscription has its own connection; when it drops (network, server
/// restart, expired token) the stream reconnects with backoff, signs the
/// connection with a fresh access token and subscribes again. Events
/// published while disconnected are not replayed: refetch with a list call
/// if they matter. Cancelling the consuming task unsubscribes.
public final class Subscriptions: @unchecked Sendable {
    let transport: KilnTransport
    /// Maximum delay between reconnect attempts, in seconds.
    public var maxBackoff: TimeInterval = 30

    init(transport: KilnTransport) {
        self.transport = transport
    }

    /// Subscribes to `document` and decodes `data[field]` of every event.
    public func subscribe<T: Decodable>(_ document: String, variables: [String: JSONValue], field: String, as type: T.Type) -> AsyncThrowingStream<T, Error> {
        raw(document, variables: variables) { data in try KilnCoding.field(T.self, field, in: data) }
    }

    /// Subscribes to `document` and decodes the whole `data` of every event.
    public func subscribeData<T: Decodable>(_ document: String, variables: [String: JSONValue], as type: T.Type) -> AsyncThrowingStream<T, Error> {
        raw(document, variables: variables) { data in try KilnCoding.decode(T.self, from: .object(data)) }
    }

    private func raw<T>(_ document: String, variables: [String: JSONValue], decode: @escaping ([String: JSONValue]) throws -> T) -> AsyncThrowingStream<T, Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var attempt = 0
                while !Task.isCancelled {
                    let token: String?
                    do {
                        token = try await self.transport.accessToken()
                    } catch {
                        token = nil
                    }
                    var request = URLRequest(url: self.transport.webSocketURL)
                    request.setValue("graphql-transport-ws", forHTTPHeaderField: "Sec-WebSocket-Protocol")
                    let socket = self.transport.config.urlSession.webSocketTask(with: request)
                    socket.resume()
                    do {
                        var payload: [String: JSONValue] = [:]
                        if let token = token { payload["Authorization"] = .string("Bearer \(token)") }
                        for (k, v) in self.transport.config.headers { payload[k] = .string(v) }
                        try await self.send(socket, ["type": .string("connection_init"), "payload": .object(payload)])
                        while !Task.isCancelled {
                            let message = try await socket.receive()
                            var text = ""
                            switch message {
                            case .string(let s): text = s
                            case .data(let d): text = String(decoding: d, as: UTF8.self)
                            @unknown default: continue
                            }
                            let msg = try KilnCoding.decoder().decode(JSONValue.self, from: Data(text.utf8))
                            switch msg["type"]?.stringValue ?? "" {
                            case "connection_ack":
                                attempt = 0
                                try await self.send(socket, ["id": .string("1"), "type": .string("subscribe"),
                                                        "payload": .object(["query": .string(document), "variables": .object(variables)])])
                            case "ping":
                                try await self.send(socket, ["type": .string("pong")])
                            case "next":
                                if case .array(let errors)? = msg["payload"]?["errors"], let first = errors.first {
                                    throw KilnError.from(graphQLError: first)
                                }
                                guard case .object(let data)? = msg["payload"]?["data"] else { continue }
                                continuation.yield(try decode(data))
                            case "error":
                                if case .array(let errors)? = msg["payload"], let first = errors.first {
                                    throw KilnError.from(graphQLError: first)
                                }
                                throw KilnError.server(code: nil, message: "subscription error")
                            case "complete":
                                socket.cancel(with: .normalClosure, reason: nil)
                                continuation.finish()
                                return
                            default:
                                continue
                            }
                        }
                    } catch let error as KilnError {
                        socket.cancel(with: .normalClosure, reason: nil)
                        continuation.finish(throwing: error)
                        return
                    } catch {
                        // The connection dropped: reconnect below.
                    }
                    let code = socket.closeCode.rawValue
                    socket.cancel(with: .goingAway, reason: nil)
                    if (code == 4401 || code == 4403), let token = token {
                        let fresh = try? await self.transport.refresh(stale: token)
                        if fresh == nil {
                            continuation.finish(throwing: KilnError.unauthenticated(message: "the session ended"))
                            return
                        }
                    }
                    let delay = min(self.maxBackoff, 0.25 * Double(1 << min(attempt, 7)))
                    attempt += 1
                    try? await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000))
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func send(_ socket: URLSessionWebSocketTask, _ message: [String: JSONValue]) async throws {
        let data = try JSONEncoder().encode(JSONValue.object(message))
        try await socket.send(.string(String(decoding: data, as: UTF8.self)))
    }
}
