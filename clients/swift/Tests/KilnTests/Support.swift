// Hand-written (not generated): helpers of the SDK's tests.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import Kiln

/// A queue one consumer takes from in order, waiting while it is empty.
final class Mailbox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Result<T, Error>] = []
    private var waiter: CheckedContinuation<T, Error>?

    func put(_ item: Result<T, Error>) {
        lock.lock()
        if let w = waiter {
            waiter = nil
            lock.unlock()
            w.resume(with: item)
        } else {
            items.append(item)
            lock.unlock()
        }
    }

    func put(_ value: T) { put(.success(value)) }

    func take() async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            lock.lock()
            if items.isEmpty {
                waiter = c
                lock.unlock()
            } else {
                let item = items.removeFirst()
                lock.unlock()
                c.resume(with: item)
            }
        }
    }

    /// What is queued now, without waiting.
    func drain() -> [T] {
        lock.lock()
        defer { lock.unlock() }
        let out = items.compactMap { try? $0.get() }
        items = []
        return out
    }
}

/// A value behind a lock.
final class Locked<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T

    init(_ value: T) { self.value = value }

    func get() -> T {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func update<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

func json(_ text: String) -> JSONValue {
    try! JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

func text(_ value: JSONValue) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return String(decoding: try! e.encode(value), as: UTF8.self)
}

// MARK: - HTTP stub

/// A GraphQL server scripted by a handler, behind URLProtocol: each
/// `StubServer` has its own host, so tests do not share handlers.
final class StubServer: @unchecked Sendable {
    struct Request: Sendable {
        let headers: [String: String]
        let body: JSONValue
        var query: String? { body["query"]?.stringValue }
        var variables: JSONValue? { body["variables"] }
        var authorization: String? { headers.first { $0.key.lowercased() == "authorization" }?.value }
    }

    struct Response: Sendable {
        var status = 200
        var headers: [String: String] = ["Content-Type": "application/json"]
        var body: String
    }

    typealias Handler = @Sendable (Request) -> Response

    static let registry = Locked<[String: StubServer]>([:])
    private static let counter = Locked(0)

    let host: String
    let handler: Handler
    let requests = Locked<[Request]>([])

    init(_ handler: @escaping Handler) {
        let n = StubServer.counter.update { n -> Int in n += 1; return n }
        host = "stub-\(n).kiln.invalid"
        self.handler = handler
        StubServer.registry.update { $0[host] = self }
    }

    var url: URL { URL(string: "http://\(host)/graphql")! }

    /// A URLSession that reaches this server.
    var session: URLSession {
        let config = URLSessionConfiguration.ephemeral
        config.protocolClasses = [StubProtocol.self]
        return URLSession(configuration: config)
    }

    /// A client of this server (its subscriptions on `webSocket`).
    func client(session store: SessionStore = InMemorySessionStore(), webSocket: (any KilnWebSocketFactory)? = nil, reconnect: KilnReconnectPolicy = KilnReconnectPolicy(), persistedQueries: Bool = false) -> KilnClient {
        KilnClient(config: KilnConfig(url: url, sessionStore: store, urlSession: session, persistedQueries: persistedQueries, webSocket: webSocket, reconnect: reconnect))
    }

    /// A JSON response with data.
    static func data(_ data: String) -> Response { Response(body: "{\"data\":\(data)}") }

    /// A JSON response with one error.
    static func error(_ code: String, _ message: String = "refused", extensions: String = "") -> Response {
        Response(body: "{\"errors\":[{\"message\":\"\(message)\",\"extensions\":{\"code\":\"\(code)\"\(extensions)}}],\"data\":null}")
    }
}

final class StubProtocol: URLProtocol {
    override class func canInit(with request: URLRequest) -> Bool {
        guard let host = request.url?.host else { return false }
        return StubServer.registry.get()[host] != nil
    }

    override class func canonicalRequest(for request: URLRequest) -> URLRequest { request }

    override func startLoading() {
        guard let url = request.url, let server = StubServer.registry.get()[url.host ?? ""] else {
            client?.urlProtocol(self, didFailWithError: URLError(.cannotConnectToHost))
            return
        }
        var body = request.httpBody ?? Data()
        if body.isEmpty, let stream = request.httpBodyStream {
            stream.open()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while stream.hasBytesAvailable {
                let n = stream.read(&buffer, maxLength: buffer.count)
                if n <= 0 { break }
                body.append(buffer, count: n)
            }
            stream.close()
        }
        let parsed = (try? JSONDecoder().decode(JSONValue.self, from: body)) ?? .null
        let req = StubServer.Request(headers: request.allHTTPHeaderFields ?? [:], body: parsed)
        server.requests.update { $0.append(req) }
        let res = server.handler(req)
        let http = HTTPURLResponse(url: url, statusCode: res.status, httpVersion: "HTTP/1.1", headerFields: res.headers)!
        client?.urlProtocol(self, didReceive: http, cacheStoragePolicy: .notAllowed)
        client?.urlProtocol(self, didLoad: Data(res.body.utf8))
        client?.urlProtocolDidFinishLoading(self)
    }

    override func stopLoading() {}
}

/// The JSON of a session, as signIn and refreshSession answer it.
func sessionJSON(_ access: String, _ refresh: String, expiresIn: TimeInterval = 3600) -> String {
    let expires = KilnCoding.string(from: Date().addingTimeInterval(expiresIn))
    return "{\"accessToken\":\"\(access)\",\"refreshToken\":\"\(refresh)\",\"expiresAt\":\"\(expires)\",\"user\":{\"id\":\"u1\",\"email\":\"ada@example.com\",\"anonymous\":false,\"roles\":[],\"createdAt\":\"2024-01-02T03:04:05Z\"}}"
}

/// A session store holding a session with these tokens.
func signedIn(_ access: String, _ refresh: String, expiresIn: TimeInterval = 3600) -> InMemorySessionStore {
    let store = InMemorySessionStore()
    store.save(try! KilnCoding.decode(Session.self, from: json(sessionJSON(access, refresh, expiresIn: expiresIn))))
    return store
}

/// A Post as the server sends it.
func postJSON(_ id: String, body: String = "hello") -> String {
    "{\"id\":\"\(id)\",\"createdAt\":\"2024-05-06T07:08:09.123456Z\",\"updatedAt\":\"2024-05-06T07:08:09Z\",\"version\":1,\"authorID\":\"a1\",\"title\":null,\"body\":\"\(body)\",\"visibility\":\"PUBLIC\",\"tags\":[],\"likeCount\":0,\"score\":0,\"publishedAt\":null,\"ownerID\":\"u1\",\"attachments\":[]}"
}

// MARK: - Scripted WebSocket

/// A socket whose server side the test plays: it reads what the client
/// sent (`sent()`) and answers (`reply`, `close`, `drop`).
final class ScriptedSocket: KilnWebSocket, @unchecked Sendable {
    let request: URLRequest
    private let inbox = Mailbox<String>()
    private let outbox = Mailbox<String>()
    private let closes = Mailbox<Int>()
    private let state = Locked<(code: Int, reason: String)?>(nil)

    init(_ request: URLRequest) { self.request = request }

    // The client's side.

    func send(_ text: String) async throws {
        if state.get() != nil { throw URLError(.networkConnectionLost) }
        outbox.put(text)
    }

    func receive() async throws -> String { try await inbox.take() }

    func close(code: Int, reason: String) {
        let first = state.update { s -> Bool in
            if s != nil { return false }
            s = (code, reason)
            return true
        }
        guard first else { return }
        closes.put(code)
        inbox.put(.failure(URLError(.cancelled)))
        // A test waiting for a message fails instead of waiting forever.
        outbox.put(.failure(ClosedByClient(code: code, reason: reason)))
    }

    // The server's side.

    /// The next message the client sent.
    func sent() async throws -> JSONValue { json(try await outbox.take()) }

    /// The next message the client sent, which must have this type.
    @discardableResult
    func expect(_ type: String, file: StaticString = #filePath, line: UInt = #line) async throws -> JSONValue {
        let m = try await sent()
        XCTAssertEqual(m["type"]?.stringValue, type, "got \(text(m))", file: file, line: line)
        return m
    }

    /// Sends `text` as it is (JSON or not).
    func replyRaw(_ text: String) { inbox.put(text) }

    func reply(_ type: String, id: String? = nil, payload: String? = nil) {
        var parts = ["\"type\":\"\(type)\""]
        if let id = id { parts.append("\"id\":\"\(id)\"") }
        if let payload = payload { parts.append("\"payload\":\(payload)") }
        inbox.put("{" + parts.joined(separator: ",") + "}")
    }

    /// The server closes the socket with a close frame.
    func serverClose(_ code: Int, _ reason: String = "") {
        inbox.put(.failure(KilnWebSocketError.closed(code: code, reason: reason)))
    }

    /// The connection breaks.
    func drop() { inbox.put(.failure(URLError(.networkConnectionLost))) }

    /// The close code the client closed the socket with (waits for it).
    func closedByClient() async throws -> Int { try await closes.take() }

    /// What the client closed it with, if it did.
    var closed: (code: Int, reason: String)? { state.get() }
}

struct ClosedByClient: Error {
    let code: Int
    let reason: String
}

/// Hands out scripted sockets; the test takes each with `next()`.
final class ScriptedSockets: KilnWebSocketFactory, @unchecked Sendable {
    private let sockets = Mailbox<ScriptedSocket>()
    private let failures = Locked<[Error]>([])
    let opened = Locked(0)

    /// The next `open` throws `error` instead.
    func failNextOpen(_ error: Error) { failures.update { $0.append(error) } }

    func open(_ request: URLRequest) async throws -> any KilnWebSocket {
        opened.update { $0 += 1 }
        if let error = failures.update({ $0.isEmpty ? nil : $0.removeFirst() }) {
            throw error
        }
        let s = ScriptedSocket(request)
        sockets.put(s)
        return s
    }

    /// The next socket the client opened (waits for it).
    func next() async throws -> ScriptedSocket { try await sockets.take() }
}

/// Waits for the next state that matches, returning the states seen up to it.
@discardableResult
func awaitState(_ it: inout AsyncStream<KilnConnectionState>.Iterator, until match: (KilnConnectionState) -> Bool) async -> [KilnConnectionState] {
    var seen: [KilnConnectionState] = []
    while let s = await it.next() {
        seen.append(s)
        if match(s) { return seen }
    }
    return seen
}

/// Collects a stream's elements in the background; `next()` waits for each.
final class Collector<T: Sendable>: @unchecked Sendable {
    private let items = Mailbox<T>()
    private let end = Mailbox<String>()
    private let finished = Locked<Error??>(nil)
    private var task: Task<Void, Never>?

    init(_ stream: AsyncThrowingStream<T, Error>) {
        let items = self.items, end = self.end, finished = self.finished
        task = Task {
            do {
                for try await item in stream { items.put(item) }
                finished.update { $0 = .some(nil) }
            } catch {
                finished.update { $0 = .some(error) }
            }
            end.put("end")
            items.put(.failure(CollectorEnded()))
        }
    }

    struct CollectorEnded: Error {}

    /// The next element; throws CollectorEnded when the stream ended first.
    func next() async throws -> T { try await items.take() }

    /// The elements received so far and not taken yet, without waiting.
    func available() -> [T] { items.drain() }

    /// Waits for the stream to end; its error, or nil when it finished.
    func ended() async -> Error? {
        _ = try? await end.take()
        return finished.get() ?? nil
    }

    /// Stops consuming (as an app cancelling its task does).
    func cancel() { task?.cancel() }
}
