import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One WebSocket connection, as subscriptions use it: text messages both
/// ways, and a close. `KilnConfig.webSocket` opens them; the default,
/// `URLSessionWebSockets`, uses `URLSessionWebSocketTask`. Bring your own
/// to use another WebSocket library (on Linux, whose libcurl may lack
/// WebSockets; behind a proxy) or to script the server in tests.
public protocol KilnWebSocket: AnyObject, Sendable {
    /// Sends one text message; throws when the socket is closed or broken.
    func send(_ text: String) async throws

    /// The next message from the server (a binary message as UTF-8 text).
    /// When the socket ends it throws a `KilnWebSocketError`:
    /// `.closed(code:reason:)` when the server closed it with a close frame,
    /// `.rejected(status:message:)` when the server answered the upgrade
    /// with an HTTP error, `.unsupported(message:)` when this socket can
    /// never work here. Any other error means the connection dropped, and
    /// subscriptions reconnect.
    func receive() async throws -> String

    /// Closes the socket with a close code (1000...4999) and a reason, after
    /// the messages already sent; a pending `receive()` then throws. Closing
    /// a closed socket does nothing.
    func close(code: Int, reason: String)
}

/// Opens the WebSockets that subscriptions use (`KilnConfig.webSocket`).
public protocol KilnWebSocketFactory: Sendable {
    /// Opens a socket for `request`: its URL is the endpoint's ws:// or
    /// wss:// URL, its `Sec-WebSocket-Protocol` header is
    /// `graphql-transport-ws`, and it carries `KilnConfig.headers`. It may
    /// return before the handshake completes: a failed handshake then
    /// surfaces from `receive()`.
    func open(_ request: URLRequest) async throws -> any KilnWebSocket
}

/// How a `KilnWebSocket` ended, when it is not a plain dropped connection.
public enum KilnWebSocketError: Error, Equatable, Sendable {
    /// The server closed the socket with this close code and reason.
    case closed(code: Int, reason: String)
    /// The server answered the upgrade with this HTTP status instead of 101.
    case rejected(status: Int, message: String)
    /// WebSockets cannot work here, and retrying will not help: the
    /// platform lacks them (a libcurl without WebSockets on Linux), or the
    /// URL's scheme is not one they support.
    case unsupported(message: String)
}

/// The default `KilnWebSocketFactory`: a `URLSessionWebSocketTask` on a
/// URLSession (when `KilnConfig.webSocket` is nil, on the client's URLSession).
public struct URLSessionWebSockets: KilnWebSocketFactory {
    public let session: URLSession

    public init(session: URLSession = .shared) {
        self.session = session
    }

    public func open(_ request: URLRequest) async throws -> any KilnWebSocket {
        URLSessionWebSocket(task: session.webSocketTask(with: request))
    }
}

/// A `KilnWebSocket` over a `URLSessionWebSocketTask`.
public final class URLSessionWebSocket: KilnWebSocket {
    public let task: URLSessionWebSocketTask

    /// Wraps `task` and resumes it.
    public init(task: URLSessionWebSocketTask) {
        self.task = task
        task.resume()
    }

    public func send(_ text: String) async throws {
        try await task.send(.string(text))
    }

    public func receive() async throws -> String {
        let message: URLSessionWebSocketTask.Message
        do {
            message = try await task.receive()
        } catch {
            throw ending(error)
        }
        switch message {
        case .string(let text): return text
        case .data(let data): return String(decoding: data, as: UTF8.self)
        @unknown default: throw KilnWebSocketError.closed(code: 1003, reason: "unknown message kind")
        }
    }

    public func close(code: Int, reason: String) {
        // URLSession knows only the standard codes; a protocol code (44xx)
        // goes out as 1002 (protocol error).
        let closeCode = URLSessionWebSocketTask.CloseCode(rawValue: code) ?? .protocolError
        task.cancel(with: closeCode, reason: Data(reason.utf8))
    }

    /// What a failed receive means.
    private func ending(_ error: Error) -> Error {
        if task.closeCode != .invalid {
            let reason = task.closeReason.map { String(decoding: $0, as: UTF8.self) } ?? ""
            return KilnWebSocketError.closed(code: task.closeCode.rawValue, reason: reason)
        }
        if let http = task.response as? HTTPURLResponse, http.statusCode >= 300 {
            return KilnWebSocketError.rejected(status: http.statusCode, message: HTTPURLResponse.localizedString(forStatusCode: http.statusCode))
        }
        if let urlError = error as? URLError, urlError.code == .unsupportedURL || urlError.code == .badURL {
            // Linux with a libcurl without WebSockets answers this at once.
            return KilnWebSocketError.unsupported(message: "URLSessionWebSocketTask cannot open \(task.originalRequest?.url?.absoluteString ?? "the socket"): \(urlError.localizedDescription); plug in another socket with KilnConfig.webSocket")
        }
        return error
    }
}
