import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// How to reach a Kiln server.
public struct KilnConfig: Sendable {
    /// The GraphQL endpoint, e.g. `https://api.example.com/graphql` (subscriptions use the same path over ws/wss).
    public var url: URL
    /// Where the session lives between launches: loaded once when the
    /// client is created, saved on every change. The default keeps it in
    /// memory; `KeychainSessionStore` (Apple platforms) and
    /// `FileSessionStore` (Linux, servers) keep it across launches.
    public var sessionStore: SessionStore
    /// The URLSession for HTTP (and the default WebSockets). Nil (the
    /// default): the client creates its own, which `KilnClient.close()`
    /// invalidates. One you pass is yours: close() leaves it valid.
    public var urlSession: URLSession?
    /// How long before expiry the access token is refreshed.
    public var refreshBefore: TimeInterval
    /// Extra headers on every request.
    public var headers: [String: String]
    /// Send custom operations by their sha256 only (automatic persisted
    /// queries; the text follows when the server asks). Model calls always
    /// send their text.
    public var persistedQueries: Bool
    /// Opens the WebSockets of subscriptions; nil uses
    /// `URLSessionWebSocketTask` on `urlSession` (`URLSessionWebSockets`).
    public var webSocket: (any KilnWebSocketFactory)?
    /// How subscriptions retry a dropped connection.
    public var reconnect: KilnReconnectPolicy

    public init(url: URL, sessionStore: SessionStore = InMemorySessionStore(), urlSession: URLSession? = nil, refreshBefore: TimeInterval = 60, headers: [String: String] = [:], persistedQueries: Bool = false, webSocket: (any KilnWebSocketFactory)? = nil, reconnect: KilnReconnectPolicy = KilnReconnectPolicy()) {
        self.url = url
        self.sessionStore = sessionStore
        self.urlSession = urlSession
        self.refreshBefore = refreshBefore
        self.headers = headers
        self.persistedQueries = persistedQueries
        self.webSocket = webSocket
        self.reconnect = reconnect
    }
}

/// Serializes refreshes: concurrent callers share one refreshSession call.
actor KilnRefreshGate {
    private var running: Task<String?, Error>?

    func run(_ operation: @escaping @Sendable () async throws -> String?) async throws -> String? {
        if let running = running {
            return try await running.value
        }
        let task = Task { try await operation() }
        running = task
        defer { running = nil }
        return try await task.value
    }
}

/// Sends GraphQL requests with the session's access token, refreshing it as
/// needed. It holds the session in memory: loaded from
/// `KilnConfig.sessionStore` when created, written through to it on every
/// change.
/// (Sendable: its mutable members are behind `lock`.)
public final class KilnTransport: @unchecked Sendable {
    public let config: KilnConfig
    /// The URLSession calls go through: `KilnConfig.urlSession`, or the one
    /// this transport created (invalidated by `KilnClient.close()`).
    public let urlSession: URLSession
    private let ownsURLSession: Bool
    private let gate = KilnRefreshGate()
    private let lock = NSLock()
    /// Calls in flight that replace the session (changePassword, linkAccount).
    private var replacingCount = 0
    /// The session, in memory.
    private var current: Session?
    private var closed = false
    /// Calls using `urlSession` now: the session is invalidated after the last.
    private var active = 0
    private var invalidated = false

    init(config: KilnConfig) {
        self.config = config
        if let session = config.urlSession {
            urlSession = session
            ownsURLSession = false
        } else {
            urlSession = URLSession(configuration: .default)
            ownsURLSession = true
        }
        // A store that cannot be read counts as holding no session.
        current = (try? config.sessionStore.load()) ?? nil
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// The current session (in memory), or nil when signed out.
    public var currentSession: Session? { locked { current } }

    /// True once `KilnClient.close()` ran: every call then throws `KilnError.closed`.
    public var isClosed: Bool { locked { closed } }

    static let closedError = KilnError.closed(message: "this KilnClient is closed")

    /// Throws `KilnError.closed` after close.
    func checkOpen() throws {
        if isClosed { throw KilnTransport.closedError }
    }

    /// Keeps `session` in memory and saves it to the store (whose error,
    /// if any, is thrown; the session is kept in memory all the same).
    func keep(_ session: Session) throws {
        try locked {
            current = session
            try config.sessionStore.save(session)
        }
    }

    /// Forgets the session, in memory and in the store.
    func forget() throws {
        try locked {
            current = nil
            try config.sessionStore.clear()
        }
    }

    /// Runs `body`, which makes tasks on `urlSession`, unless the client is
    /// closed; an owned session is invalidated only after the last such body
    /// returned (a task made on an invalidated session would crash).
    func withURLSession<T>(_ body: (URLSession) async throws -> T) async throws -> T {
        try locked {
            if closed { throw KilnTransport.closedError }
            active += 1
        }
        defer { leave() }
        do {
            return try await body(urlSession)
        } catch {
            if isClosed { throw KilnTransport.closedError }
            throw error
        }
    }

    private func leave() {
        let invalidate = locked { () -> Bool in
            active -= 1
            guard closed, active == 0, !invalidated else { return false }
            invalidated = true
            return true
        }
        if invalidate && ownsURLSession { urlSession.invalidateAndCancel() }
    }

    /// Marks the transport closed (false when it was already) and, when the
    /// URLSession is its own, cancels its tasks and invalidates it once no
    /// call is using it.
    func close() -> Bool {
        let (first, idle) = locked { () -> (Bool, Bool) in
            if closed { return (false, false) }
            closed = true
            if active == 0 { invalidated = true }
            return (true, active == 0)
        }
        guard first, ownsURLSession else { return first }
        if idle {
            urlSession.invalidateAndCancel()
        } else {
            // Calls in flight end with KilnError.closed; the last one invalidates.
            urlSession.getAllTasks { tasks in tasks.forEach { $0.cancel() } }
        }
        return true
    }

    /// The WebSocket URL of the endpoint: ws:// for http://, wss:// for https://.
    public var webSocketURL: URL {
        var c = URLComponents(url: config.url, resolvingAgainstBaseURL: false)!
        switch c.scheme?.lowercased() {
        case "https", "wss": c.scheme = "wss"
        case "http", "ws": c.scheme = "ws"
        default: break // not a WebSocket URL: subscriptions fail with KilnError.unsupported
        }
        return c.url!
    }

    /// Runs an operation and returns its data; authenticated calls refresh and retry once on UNAUTHENTICATED.
    public func execute(_ document: String, variables: [String: JSONValue] = [:], authenticated: Bool = true, hash: String? = nil) async throws -> [String: JSONValue] {
        try checkOpen()
        var token: String? = nil
        if authenticated {
            token = try await accessToken()
        }
        do {
            return try await sendPersisted(document, variables: variables, token: token, hash: hash)
        } catch KilnError.unauthenticated(let message) {
            guard let token = token, let fresh = try await refresh(stale: token) else {
                throw KilnError.unauthenticated(message: message)
            }
            return try await sendPersisted(document, variables: variables, token: fresh, hash: hash)
        }
    }

    /// Runs `document` with one file as its variable `file`, in a GraphQL
    /// multipart request; refreshes and retries once on UNAUTHENTICATED.
    public func executeUpload(_ document: String, filename: String, contentType: String, data: Data) async throws -> [String: JSONValue] {
        try checkOpen()
        let file = KilnUploadPart(filename: filename, contentType: contentType, data: data)
        let token = try await accessToken()
        do {
            return try await send(document, variables: ["file": .null], token: token, file: file)
        } catch KilnError.unauthenticated(let message) {
            guard let token = token, let fresh = try await refresh(stale: token) else {
                throw KilnError.unauthenticated(message: message)
            }
            return try await send(document, variables: ["file": .null], token: fresh, file: file)
        }
    }

    /// With `persistedQueries` and a hash: the hash alone first, the text too when the server does not know it.
    private func sendPersisted(_ document: String, variables: [String: JSONValue], token: String?, hash: String?) async throws -> [String: JSONValue] {
        guard let hash = hash, config.persistedQueries else {
            return try await send(document, variables: variables, token: token)
        }
        do {
            return try await send(nil, variables: variables, token: token, hash: hash)
        } catch KilnError.server(let code, let message) where code == "PERSISTED_QUERY_NOT_FOUND" || message.contains("PersistedQueryNotFound") {
            return try await send(document, variables: variables, token: token, hash: hash)
        }
    }

    /// A valid access token (refreshed if it expires soon), or nil when signed out.
    public func accessToken() async throws -> String? {
        guard let s = currentSession else { return nil }
        if s.expiresAt.timeIntervalSinceNow > config.refreshBefore { return s.accessToken }
        return try await refresh(stale: s.accessToken)
    }

    /// Exchanges the refresh token for a new session unless another caller
    /// already did; nil (and the session cleared) when it cannot be refreshed.
    public func refresh(stale: String?) async throws -> String? {
        try await gate.run { [self] in
            guard let current = currentSession else { return nil }
            if let stale = stale, current.accessToken != stale, current.expiresAt.timeIntervalSinceNow > config.refreshBefore {
                return current.accessToken
            }
            let session: Session
            do {
                let data = try await send(KilnTransport.refreshDocument, variables: ["refreshToken": .string(current.refreshToken)], token: nil)
                session = try KilnCoding.field(Session.self, "refreshSession", in: data)
            } catch KilnError.network(let message) {
                throw KilnError.network(message: message)
            } catch KilnError.closed(let message) {
                throw KilnError.closed(message: message)
            } catch {
                // A call replacing the session (a password change ends the
                // old one) may be answering right now: its session wins.
                var waited = 0
                while replacing() > 0 && waited < 500 {
                    try? await Task.sleep(nanoseconds: 20_000_000)
                    waited += 1
                }
                if let now = currentSession, now.accessToken != current.accessToken {
                    return now.accessToken
                }
                try forget()
                return nil
            }
            try keep(session)
            return session.accessToken
        }
    }

    private func replacing() -> Int {
        locked { replacingCount }
    }

    private func addReplacing(_ delta: Int) {
        locked { replacingCount += delta }
    }

    /// Runs body, a call whose answer replaces the session, so that a
    /// refresh failing meanwhile waits for it.
    func replacingSession<T>(_ body: () async throws -> T) async throws -> T {
        addReplacing(1)
        defer { addReplacing(-1) }
        return try await body()
    }

    /// The JSON body of a request: what every call sends.
    public static func body(_ document: String?, variables: [String: JSONValue], hash: String? = nil) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var body: [String: JSONValue] = ["variables": .object(variables)]
        if let document = document { body["query"] = .string(document) }
        if let hash = hash {
            body["extensions"] = .object(["persistedQuery": .object(["version": .int(1), "sha256Hash": .string(hash)])])
        }
        return try encoder.encode(JSONValue.object(body))
    }

    func send(_ document: String?, variables: [String: JSONValue], token: String?, hash: String? = nil, file: KilnUploadPart? = nil) async throws -> [String: JSONValue] {
        var request = URLRequest(url: config.url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        for (k, v) in config.headers { request.setValue(v, forHTTPHeaderField: k) }
        if let token = token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        request.httpBody = try KilnTransport.body(document, variables: variables, hash: hash)
        if let file = file, let operations = request.httpBody {
            // The file goes as part "0" of a multipart request (GraphQL multipart request spec).
            let boundary = "kiln-\(UUID().uuidString)"
            var body = Data()
            func part(_ headers: String, _ content: Data) {
                body.append(Data("--\(boundary)\r\n\(headers)\r\n\r\n".utf8))
                body.append(content)
                body.append(Data("\r\n".utf8))
            }
            part("Content-Disposition: form-data; name=\"operations\"", operations)
            part("Content-Disposition: form-data; name=\"map\"", Data("{\"0\":[\"variables.file\"]}".utf8))
            let name = file.filename.replacingOccurrences(of: "\"", with: "%22")
            part("Content-Disposition: form-data; name=\"0\"; filename=\"\(name)\"\r\nContent-Type: \(file.contentType)", file.data)
            body.append(Data("--\(boundary)--\r\n".utf8))
            request.setValue("multipart/form-data; boundary=\(boundary)", forHTTPHeaderField: "Content-Type")
            request.httpBody = body
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await withURLSession { session in try await session.data(for: request) }
        } catch let error as KilnError {
            throw error
        } catch {
            throw KilnError.network(message: "request to \(config.url) failed: \(error.localizedDescription)")
        }
        let http = response as? HTTPURLResponse
        let status = http?.statusCode ?? 0
        let retryAfter = (http?.value(forHTTPHeaderField: "Retry-After")).flatMap { Int($0) }
        let text = String(decoding: data, as: UTF8.self)
        let json = try? KilnCoding.decoder().decode(JSONValue.self, from: data)
        if case .array(let errors)? = json?["errors"], let first = errors.first {
            throw KilnError.from(graphQLError: first, retryAfter: retryAfter)
        }
        if status == 401 { throw KilnError.unauthenticated(message: text) }
        if status == 429 { throw KilnError.rateLimited(retryAfter: retryAfter, message: text) }
        if status >= 400 && json == nil { throw KilnError.server(code: "HTTP_\(status)", message: text) }
        guard case .object(let dataObject)? = json?["data"] else {
            throw KilnError.decoding(message: "response has no data: \(text.prefix(200))")
        }
        return dataObject
    }

    static let refreshDocument = "{{doc refreshSession}}"
}

/// A file sent in a multipart request.
struct KilnUploadPart: Sendable {
    let filename: String
    let contentType: String
    let data: Data
}
