// Hand-written (not generated), for tests only: a minimal RFC 6455
// WebSocket client over a plain TCP socket (ws:// only, no TLS, no
// extensions), plugged into the SDK through KilnConfig.webSocket.
//
// Why: the live subscription test must run the real graphql-transport-ws
// exchange with the real server in CI, on Linux, where
// URLSessionWebSocketTask cannot (Debian 12's libcurl 7.88 has no
// WebSocket support: it fails with "WebSockets not supported by libcurl").
// Where URLSessionWebSocketTask works (Apple platforms), the live test uses
// the SDK's default instead.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Kiln

/// Opens `PlainWebSocket`s.
struct PlainWebSockets: KilnWebSocketFactory {
    func open(_ request: URLRequest) async throws -> any KilnWebSocket {
        try await withCheckedThrowingContinuation { c in
            // Connecting and the handshake block: not on the cooperative pool.
            Thread.detachNewThread {
                c.resume(with: Result { PlainWebSocket(fd: try PlainWebSocket.connect(request)) })
            }
        }
    }
}

final class PlainWebSocket: KilnWebSocket, @unchecked Sendable {
    private let fd: Int32
    private let writeLock = NSLock()
    private let inbox = Mailbox<String>()
    private let closed = Locked(false)

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A socket on a connected, upgraded file descriptor; it reads on its own thread.
    init(fd: Int32) {
        self.fd = fd
        let reader = Thread { [self] in self.readLoop() }
        reader.start()
    }

    deinit {
        _ = sysClose(fd)
    }

    /// Connects to the request's host and upgrades the connection.
    static func connect(_ request: URLRequest) throws -> Int32 {
        guard let url = request.url, url.scheme == "ws", let host = url.host else {
            throw KilnWebSocketError.unsupported(message: "PlainWebSocket speaks ws:// only, not \(request.url?.absoluteString ?? "nil")")
        }
        let port = url.port ?? 80
        let fd = try connect(host: host, port: port)
        do {
            try handshake(fd, request, host: host, port: port)
        } catch {
            _ = sysClose(fd)
            throw error
        }
        return fd
    }

    // MARK: KilnWebSocket

    func send(_ text: String) async throws {
        guard !closed.get() else { throw Failure(description: "socket closed") }
        try write(frame(opcode: 0x1, Array(text.utf8)))
    }

    func receive() async throws -> String { try await inbox.take() }

    func close(code: Int, reason: String) {
        let first = closed.update { c -> Bool in
            defer { c = true }
            return !c
        }
        guard first else { return }
        var payload = [UInt8(truncatingIfNeeded: code >> 8), UInt8(truncatingIfNeeded: code)]
        payload += Array(reason.utf8.prefix(120))
        try? write(frame(opcode: 0x8, payload))
        _ = shutdown(fd, Int32(SHUT_RDWR))
        inbox.put(.failure(Failure(description: "closed by the client with \(code)")))
    }

    // MARK: Socket

    private static func connect(host: String, port: Int) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw URLError(.cannotFindHost)
        }
        defer { freeaddrinfo(list) }
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd >= 0 {
                if sysConnect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return fd }
                _ = sysClose(fd)
            }
            ai = a.pointee.ai_next
        }
        throw URLError(.cannotConnectToHost)
    }

    private static func handshake(_ fd: Int32, _ request: URLRequest, host: String, port: Int) throws {
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        var path = request.url?.path ?? "/"
        if path.isEmpty { path = "/" }
        if let q = request.url?.query { path += "?" + q }
        var head = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (k, v) in request.allHTTPHeaderFields ?? [:] { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        try write(fd, Array(head.utf8))
        // The response head, byte by byte up to the blank line (frames follow).
        var response: [UInt8] = []
        while !response.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard response.count < 16384 else { throw Failure(description: "handshake response too long") }
            response += try read(fd, 1)
        }
        let lines = String(decoding: response, as: UTF8.self).components(separatedBy: "\r\n")
        let status = lines.first?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        guard status == 101 else {
            throw KilnWebSocketError.rejected(status: status, message: lines.first ?? "")
        }
        // (Sec-WebSocket-Accept is not verified: there is no SHA-1 in Foundation on Linux.)
        let headers = lines.dropFirst().map { $0.lowercased() }
        guard headers.contains(where: { $0.hasPrefix("sec-websocket-protocol:") && $0.contains("graphql-transport-ws") }) else {
            throw Failure(description: "the server did not accept graphql-transport-ws: \(lines)")
        }
    }

    private func write(_ bytes: [UInt8]) throws {
        writeLock.lock()
        defer { writeLock.unlock() }
        try PlainWebSocket.write(fd, bytes)
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { sysSend(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            sent += n
        }
    }

    private func read(_ count: Int) throws -> [UInt8] { try PlainWebSocket.read(fd, count) }

    private static func read(_ fd: Int32, _ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw URLError(.networkConnectionLost) }
            got += n
        }
        return out
    }

    /// A masked client frame.
    private func frame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x80 | opcode]
        let n = payload.count
        if n < 126 {
            out.append(0x80 | UInt8(n))
        } else if n < 65536 {
            out += [0x80 | 126, UInt8(n >> 8), UInt8(n & 0xff)]
        } else {
            out.append(0x80 | 127)
            out += (0..<8).reversed().map { UInt8(truncatingIfNeeded: n >> ($0 * 8)) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        out += mask
        out += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return out
    }

    /// Reads frames until the connection ends; text messages go to the inbox.
    private func readLoop() {
        var message: [UInt8] = []
        do {
            while true {
                let head = try read(2)
                let fin = head[0] & 0x80 != 0
                let opcode = head[0] & 0x0f
                var length = Int(head[1] & 0x7f)
                if length == 126 {
                    let b = try read(2)
                    length = Int(b[0]) << 8 | Int(b[1])
                } else if length == 127 {
                    length = try read(8).reduce(0) { $0 << 8 | Int($1) }
                }
                var payload: [UInt8] = []
                if head[1] & 0x80 != 0 { // servers do not mask, but be lenient
                    let mask = try read(4)
                    payload = try read(length).enumerated().map { $0.element ^ mask[$0.offset % 4] }
                } else if length > 0 {
                    payload = try read(length)
                }
                switch opcode {
                case 0x0, 0x1, 0x2:
                    message += payload
                    if fin {
                        inbox.put(String(decoding: message, as: UTF8.self))
                        message = []
                    }
                case 0x8:
                    let code = payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : 1005
                    let reason = payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : ""
                    if !closed.update({ c -> Bool in defer { c = true }; return c }) {
                        // Echo the close, as the protocol asks.
                        try? write(frame(opcode: 0x8, Array(payload.prefix(2))))
                    }
                    _ = shutdown(fd, Int32(SHUT_RDWR))
                    inbox.put(.failure(KilnWebSocketError.closed(code: code, reason: reason)))
                    return
                case 0x9:
                    try? write(frame(opcode: 0xA, payload))
                default:
                    break
                }
            }
        } catch {
            // The file descriptor closes in deinit, once nothing writes to it.
            _ = shutdown(fd, Int32(SHUT_RDWR))
            inbox.put(.failure(error))
        }
    }
}

// The C functions, under names that do not clash with the methods above.
private func sysClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.close(fd)
    #else
    return Darwin.close(fd)
    #endif
}

private func sysConnect(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>?, _ len: socklen_t) -> Int32 {
    #if canImport(Glibc)
    return Glibc.connect(fd, addr, len)
    #else
    return Darwin.connect(fd, addr, len)
    #endif
}

private func sysSend(_ fd: Int32, _ buf: UnsafeRawPointer?, _ len: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.send(fd, buf, len, Int32(MSG_NOSIGNAL))
    #else
    return Darwin.send(fd, buf, len, 0)
    #endif
}
