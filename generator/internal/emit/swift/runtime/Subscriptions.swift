import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The state of the subscriptions' connection (`Subscriptions.state`).
public enum KilnConnectionState: Sendable, Equatable {
    /// Opening the socket and waiting for the server's acknowledgement.
    case connecting
    /// Acknowledged: subscriptions are running and events arrive.
    case connected
    /// The connection dropped (or could not be opened); attempt number
    /// `attempt` (1, 2, ...) starts after `delay` seconds. Events published
    /// meanwhile are lost: reload what matters once `connected` again.
    case reconnecting(attempt: Int, delay: TimeInterval)
    /// No connection: no subscription is running, or they all ended with
    /// `error`, a failure that retrying would not heal.
    case closed(error: KilnError?)
}

/// How subscriptions retry a dropped connection: attempt n (1, 2, ...)
/// waits `min(maxDelay, initialDelay * multiplier^(n-1))`, less a random
/// part of up to `jitter` of it, so that clients dropped together do not
/// come back together. Attempts restart from 1 after a connection is
/// acknowledged.
public struct KilnReconnectPolicy: Sendable, Equatable {
    public var initialDelay: TimeInterval
    public var maxDelay: TimeInterval
    public var multiplier: Double
    /// The largest fraction (0...1) of a delay taken off at random.
    public var jitter: Double
    /// Failed attempts in a row after which subscriptions end with
    /// `KilnError.network`; nil retries for as long as they run.
    public var maxAttempts: Int?

    public init(initialDelay: TimeInterval = 0.5, maxDelay: TimeInterval = 30, multiplier: Double = 2, jitter: Double = 0.2, maxAttempts: Int? = nil) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
        self.jitter = jitter
        self.maxAttempts = maxAttempts
    }

    /// The delay before attempt `attempt`, without jitter.
    public func delay(attempt: Int) -> TimeInterval {
        var d = max(0, initialDelay)
        var n = 1
        while n < attempt && d < maxDelay {
            d *= max(1, multiplier)
            n += 1
        }
        return min(d, maxDelay)
    }

    func jittered(attempt: Int) -> TimeInterval {
        let d = delay(attempt: attempt)
        let j = min(max(jitter, 0), 1)
        return j > 0 ? d * (1 - Double.random(in: 0...j)) : d
    }
}

/// Subscriptions over graphql-transport-ws. All subscriptions of a client
/// share one WebSocket, opened for the first and closed after the last
/// (opened by `KilnConfig.webSocket`, `URLSessionWebSocketTask` by default).
///
/// - A dropped connection reconnects with backoff (`KilnConfig.reconnect`),
///   signs in with a fresh access token and subscribes again; events
///   published while disconnected are not replayed: watch `stateUpdates()`
///   and reload after `reconnecting` if they matter.
/// - When the server refuses the connection's credentials (close 4401 or
///   4403, e.g. after the access token expired or a password change) the
///   session is refreshed and the subscriptions resume once; if the refresh
///   fails they end with `KilnError.unauthenticated`, if the fresh token is
///   refused too with `.unauthenticated` (4401) or `.forbidden` (4403).
/// - A failure that retrying cannot heal ends every stream with a
///   `KilnError`: no WebSockets on this platform or for this URL
///   (`.unsupported`), an upgrade refused with a 4xx (`.server(code:
///   "HTTP_404")`, `.forbidden`), a protocol violation (`.decoding`), a
///   fatal close code such as 4400 (`.server(code: "WEBSOCKET_4400")`).
/// - An `error` message for one subscription ends its stream with that
///   error; the others go on.
/// - Cancelling the consuming task (or dropping the stream) sends
///   `complete` for that subscription; the socket closes after the last.
/// - `KilnClient.close()` closes the socket (close code 1000) and ends
///   every stream without an error: a `for try await` loop simply exits.
///   The state becomes `.closed(error: nil)` and `stateUpdates()` streams
///   end too. Subscribing after close gives a stream that ends at once with
///   `KilnError.closed`.
public final class Subscriptions: Sendable {
    let transport: KilnTransport
    let engine: KilnSubscriptionEngine

    init(transport: KilnTransport) {
        self.transport = transport
        self.engine = KilnSubscriptionEngine(transport: transport)
    }

    /// The connection's state now.
    public var state: KilnConnectionState { engine.status.current }

    /// The connection's state now, then every change, until the consuming
    /// task stops (e.g. to show "offline" while `reconnecting`).
    public func stateUpdates() -> AsyncStream<KilnConnectionState> {
        engine.status.updates()
    }

    /// Subscribes to `document` and decodes `data[field]` of every event.
    public func subscribe<T: Decodable & Sendable>(_ document: String, variables: [String: JSONValue], field: String, as type: T.Type) -> AsyncThrowingStream<T, Error> {
        raw(document, variables: variables) { data in try KilnCoding.field(T.self, field, in: data) }
    }

    /// Subscribes to `document` and decodes the whole `data` of every event.
    public func subscribeData<T: Decodable & Sendable>(_ document: String, variables: [String: JSONValue], as type: T.Type) -> AsyncThrowingStream<T, Error> {
        raw(document, variables: variables) { data in try KilnCoding.decode(T.self, from: .object(data)) }
    }

    private func raw<T: Sendable>(_ document: String, variables: [String: JSONValue], decode: @escaping @Sendable ([String: JSONValue]) throws -> T) -> AsyncThrowingStream<T, Error> {
        let engine = self.engine
        let id = UUID().uuidString.lowercased()
        if transport.isClosed {
            return AsyncThrowingStream { $0.finish(throwing: KilnTransport.closedError) }
        }
        return AsyncThrowingStream { continuation in
            let subscriber = KilnSubscriber(
                payload: .object(["query": .string(document), "variables": .object(variables)]),
                deliver: { data in continuation.yield(try decode(data)) },
                finish: { error in continuation.finish(throwing: error) })
            continuation.onTermination = { termination in
                if case .cancelled = termination {
                    Task { await engine.remove(id) }
                }
            }
            Task { await engine.add(id, subscriber) }
        }
    }
}

/// One subscription: what to send, where its events go.
struct KilnSubscriber: Sendable {
    let payload: JSONValue
    /// Decodes and yields an event's data; throws when it does not decode.
    let deliver: @Sendable ([String: JSONValue]) throws -> Void
    let finish: @Sendable ((any Error)?) -> Void
}

/// The connection state and its watchers; every access holds the lock.
final class KilnConnectionStatus: @unchecked Sendable {
    private let lock = NSLock()
    private var state: KilnConnectionState = .closed(error: nil)
    private var watchers: [UUID: AsyncStream<KilnConnectionState>.Continuation] = [:]
    /// Set by `finish()`: the client closed, no state changes any more.
    private var finished = false

    var current: KilnConnectionState {
        lock.lock()
        defer { lock.unlock() }
        return state
    }

    func set(_ new: KilnConnectionState) {
        lock.lock()
        defer { lock.unlock() }
        guard new != state, !finished else { return }
        state = new
        for w in watchers.values { w.yield(new) }
    }

    /// Ends every watcher's stream, after the state they have seen last.
    func finish() {
        lock.lock()
        finished = true
        let ended = watchers.values
        watchers = [:]
        lock.unlock()
        for w in ended { w.finish() }
    }

    func updates() -> AsyncStream<KilnConnectionState> {
        AsyncStream(bufferingPolicy: .bufferingNewest(64)) { continuation in
            let id = UUID()
            lock.lock()
            continuation.yield(state)
            if finished {
                lock.unlock()
                continuation.finish()
                return
            }
            watchers[id] = continuation
            lock.unlock()
            continuation.onTermination = { [weak self] _ in
                guard let self = self else { return }
                self.lock.lock()
                self.watchers[id] = nil
                self.lock.unlock()
            }
        }
    }
}

/// An open socket and the one task that writes to it, in order.
final class KilnLink: Sendable {
    enum Outgoing: Sendable {
        case text(String)
        case close(Int, String)
    }

    let socket: any KilnWebSocket
    private let outbox: AsyncStream<Outgoing>.Continuation

    init(_ socket: any KilnWebSocket) {
        self.socket = socket
        var outbox: AsyncStream<Outgoing>.Continuation?
        let stream = AsyncStream<Outgoing> { outbox = $0 }
        self.outbox = outbox!
        Task {
            for await out in stream {
                switch out {
                case .text(let text):
                    do {
                        try await socket.send(text)
                    } catch {
                        // Broken: closing it makes the pending receive end too.
                        socket.close(code: 1001, reason: "send failed")
                        return
                    }
                case .close(let code, let reason):
                    socket.close(code: code, reason: reason)
                    return
                }
            }
        }
    }

    func send(_ message: [String: JSONValue]) {
        let data = (try? JSONEncoder().encode(JSONValue.object(message))) ?? Data()
        outbox.yield(.text(String(decoding: data, as: UTF8.self)))
    }

    /// Closes the socket after the messages queued before.
    func close(code: Int, reason: String) {
        outbox.yield(.close(code, reason))
        outbox.finish()
    }
}

/// How a connection ended.
enum KilnEnding: Sendable {
    /// Dropped or not opened: retry with backoff.
    case dropped(String)
    /// The server refused the credentials (4401, 4403, HTTP 401).
    case refused(code: Int, reason: String)
    /// Retrying will not help.
    case fatal(KilnError)
    /// Every subscription is gone (or another loop took over).
    case idle
}

/// The graphql-transport-ws client: one connection for every subscription.
actor KilnSubscriptionEngine {
    nonisolated let status = KilnConnectionStatus()
    private let transport: KilnTransport
    private var subscribers: [String: KilnSubscriber] = [:]
    /// Ids removed before they were added (the consumer stopped at once).
    private var removedEarly: Set<String> = []
    private var link: KilnLink?
    private var acked = false
    /// The running connection loop; a loop whose generation is not the
    /// current one stops at its next step.
    private var loop: Task<Void, Never>?
    private var generation = 0
    /// Set by `close()`: no more connections.
    private var closed = false

    init(transport: KilnTransport) {
        self.transport = transport
    }

    /// The client closed: closes the socket, ends every stream without an
    /// error and the state watchers' streams, and refuses new subscribers.
    func close() {
        closed = true
        stop(nil, reason: "client closed")
        status.finish()
    }

    func add(_ id: String, _ subscriber: KilnSubscriber) {
        if removedEarly.remove(id) != nil { return }
        if closed {
            // A stream made just before close(): it ends as the others did.
            subscriber.finish(nil)
            return
        }
        subscribers[id] = subscriber
        if let link = link, acked {
            link.send(["id": .string(id), "type": .string("subscribe"), "payload": subscriber.payload])
        }
        if loop == nil {
            generation += 1
            let g = generation
            status.set(.connecting)
            loop = Task { await self.run(g) }
        }
    }

    func remove(_ id: String) {
        guard subscribers.removeValue(forKey: id) != nil else {
            removedEarly.insert(id)
            return
        }
        if let link = link, acked {
            link.send(["id": .string(id), "type": .string("complete")])
        }
        if subscribers.isEmpty { stop(nil) }
    }

    /// Ends the loop and closes the socket; with an error, every stream ends with it.
    private func stop(_ error: KilnError?, reason: String? = nil) {
        generation += 1
        loop?.cancel()
        loop = nil
        link?.close(code: 1000, reason: reason ?? (error == nil ? "no subscriptions" : "failed"))
        link = nil
        acked = false
        // The state first: a consumer whose stream ends sees it closed.
        status.set(.closed(error: error))
        let ended = subscribers
        subscribers = [:]
        for s in ended.values { s.finish(error) }
    }

    private func run(_ g: Int) async {
        let policy = transport.config.reconnect
        var attempt = 0
        var refreshed = false
        while g == generation {
            status.set(.connecting)
            let (ending, wasAcked, token) = await connect(g)
            guard g == generation else { return }
            if wasAcked {
                attempt = 0
                refreshed = false
            }
            var why = ""
            switch ending {
            case .idle:
                return
            case .fatal(let error):
                stop(error)
                return
            case .refused(let code, let reason):
                let refused: KilnError = code == 4403 ? .forbidden(message: "the server refused the subscription's credentials (\(code)) \(reason)") : .unauthenticated(message: "the server refused the subscription's credentials (\(code)) \(reason)")
                guard let token = token, !refreshed else {
                    stop(refused)
                    return
                }
                refreshed = true
                do {
                    let fresh = try await transport.refresh(stale: token)
                    guard g == generation else { return }
                    guard fresh != nil else {
                        stop(.unauthenticated(message: "the session ended; sign in again"))
                        return
                    }
                    continue // at once, with the fresh token
                } catch {
                    guard g == generation else { return }
                    refreshed = false
                    why = "refresh failed: \(error)"
                }
            case .dropped(let reason):
                why = reason
            }
            attempt += 1
            if let max = policy.maxAttempts, attempt > max {
                stop(.network(message: "subscriptions gave up after \(max) failed connection attempts: \(why)"))
                return
            }
            let delay = policy.jittered(attempt: attempt)
            status.set(.reconnecting(attempt: attempt, delay: delay))
            try? await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000))
        }
    }

    /// One connection, from opening it to its end; whether it was
    /// acknowledged, and the access token it was signed with.
    private func connect(_ g: Int) async -> (KilnEnding, Bool, String?) {
        let config = transport.config
        guard let scheme = config.url.scheme?.lowercased(), ["http", "https", "ws", "wss"].contains(scheme) else {
            return (.fatal(.unsupported(message: "subscriptions need an http(s) or ws(s) URL, not \(config.url)")), false, nil)
        }
        let token: String?
        do {
            let hadSession = transport.currentSession != nil
            token = try await transport.accessToken()
            if hadSession && token == nil {
                return (.fatal(.unauthenticated(message: "the session ended; sign in again")), false, nil)
            }
        } catch {
            return (.dropped("no access token: \(error)"), false, nil)
        }
        guard g == generation else { return (.idle, false, token) }
        var request = URLRequest(url: transport.webSocketURL)
        for (k, v) in config.headers { request.setValue(v, forHTTPHeaderField: k) }
        request.setValue("graphql-transport-ws", forHTTPHeaderField: "Sec-WebSocket-Protocol")
        let socket: any KilnWebSocket
        do {
            if let factory = config.webSocket {
                socket = try await factory.open(request)
            } else {
                socket = try await transport.withURLSession { session in try await URLSessionWebSockets(session: session).open(request) }
            }
        } catch {
            return (ending(error), false, token)
        }
        guard g == generation else {
            socket.close(code: 1000, reason: "no subscriptions")
            return (.idle, false, token)
        }
        let link = KilnLink(socket)
        self.link = link
        acked = false
        var payload: [String: JSONValue] = [:]
        if let token = token { payload["Authorization"] = .string("Bearer \(token)") }
        for (k, v) in config.headers { payload[k] = .string(v) }
        link.send(["type": .string("connection_init"), "payload": .object(payload)])

        var wasAcked = false
        func finish(_ e: KilnEnding, close code: Int = 1000, _ reason: String = "") -> (KilnEnding, Bool, String?) {
            if self.link === link {
                self.link = nil
                acked = false
            }
            link.close(code: code, reason: reason)
            return (e, wasAcked, token)
        }
        while true {
            if subscribers.isEmpty {
                // The last one ended (complete, error): close, until the next.
                stop(nil)
                return (.idle, wasAcked, token)
            }
            let text: String
            do {
                text = try await socket.receive()
            } catch {
                guard g == generation else { return (.idle, wasAcked, token) }
                return finish(ending(error))
            }
            guard g == generation else { return (.idle, wasAcked, token) }
            guard let message = try? KilnCoding.decoder().decode(JSONValue.self, from: Data(text.utf8)),
                  let type = message["type"]?.stringValue else {
                return finish(.fatal(.decoding(message: "graphql-transport-ws: not a message: \(text.prefix(200))")), close: 4400, "invalid message")
            }
            let id = message["id"]?.stringValue ?? ""
            switch type {
            case "connection_ack":
                if !wasAcked {
                    wasAcked = true
                    acked = true
                    status.set(.connected)
                    for (id, s) in subscribers {
                        link.send(["id": .string(id), "type": .string("subscribe"), "payload": s.payload])
                    }
                }
            case "ping":
                link.send(["type": .string("pong")])
            case "pong":
                break
            case "next":
                guard let s = subscribers[id] else { continue } // already unsubscribed
                if case .array(let errors)? = message["payload"]?["errors"], let first = errors.first {
                    end(subscription: id, s, KilnError.from(graphQLError: first), complete: true)
                    continue
                }
                guard case .object(let data)? = message["payload"]?["data"] else {
                    end(subscription: id, s, KilnError.decoding(message: "graphql-transport-ws: next without data: \(text.prefix(200))"), complete: true)
                    continue
                }
                do {
                    try s.deliver(data)
                } catch {
                    end(subscription: id, s, error as? KilnError ?? .decoding(message: "\(error)"), complete: true)
                }
            case "error":
                guard let s = subscribers[id] else { continue }
                if case .array(let errors)? = message["payload"], let first = errors.first {
                    end(subscription: id, s, KilnError.from(graphQLError: first), complete: false)
                } else {
                    end(subscription: id, s, KilnError.server(code: nil, message: "subscription error: \(text.prefix(200))"), complete: false)
                }
            case "complete":
                guard let s = subscribers[id] else { continue }
                end(subscription: id, s, nil, complete: false)
            default:
                return finish(.fatal(.decoding(message: "graphql-transport-ws: unexpected message type \(type)")), close: 4400, "unexpected message type")
            }
        }
    }

    /// Ends one subscription; `complete` tells the server when it still runs it.
    private func end(subscription id: String, _ s: KilnSubscriber, _ error: KilnError?, complete: Bool) {
        subscribers[id] = nil
        if complete, let link = link, acked {
            link.send(["id": .string(id), "type": .string("complete")])
        }
        s.finish(error)
    }

    /// What the end of a socket means.
    private func ending(_ error: Error) -> KilnEnding {
        guard let e = error as? KilnWebSocketError else {
            return .dropped("\(error)")
        }
        switch e {
        case .unsupported(let message):
            return .fatal(.unsupported(message: message))
        case .rejected(let status, let message):
            switch status {
            case 401: return .refused(code: 4401, reason: "HTTP 401 \(message)")
            case 403: return .fatal(.forbidden(message: "the WebSocket upgrade was refused: HTTP 403 \(message)"))
            case 408, 425, 429, 500...: return .dropped("HTTP \(status) \(message)")
            default: return .fatal(.server(code: "HTTP_\(status)", message: "the WebSocket upgrade was refused: HTTP \(status) \(message)"))
            }
        case .closed(let code, let reason):
            switch code {
            case 4401, 4403:
                return .refused(code: code, reason: reason)
            // Protocol violations and internal errors, as graphql-ws treats them.
            case 1002, 1003, 1007, 1008, 1009, 1010, 4004, 4005, 4400, 4406, 4409, 4429, 4500:
                let message = reason.isEmpty ? "the server closed the subscription socket with \(code)" : reason
                return .fatal(.server(code: "WEBSOCKET_\(code)", message: message))
            default:
                // 1000, 1001 (going away), 1006, 1011-1014, 4408, ...: worth another try.
                return .dropped("closed with \(code) \(reason)")
            }
        }
    }
}
