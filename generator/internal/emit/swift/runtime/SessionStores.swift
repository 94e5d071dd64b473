import Foundation
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#endif
#if canImport(Security)
import Security
#endif

/// Keeps the session between launches. The client loads it once, when it is
/// created, holds it in memory, and saves it on every change: sign-up and
/// sign-in, refresh, `linkAccount` and `changePassword`; sign-out clears it.
///
/// Implementations must be safe to call from any thread. An error thrown by
/// `save` or `clear` is thrown by the call that changed the session (which
/// keeps the new session in memory all the same); one thrown by `load` when
/// the client is created counts as no session.
///
/// `InMemorySessionStore` is the default; `KeychainSessionStore` keeps the
/// session in the Keychain (Apple platforms), `FileSessionStore` in a file
/// (Linux, servers, command-line tools).
public protocol SessionStore: AnyObject, Sendable {
    func load() throws -> Session?
    func save(_ session: Session) throws
    func clear() throws
}

/// Why a session store could not read or write.
public struct KilnSessionStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    /// The `OSStatus` of a failed Keychain call, or the `errno` of a failed file call.
    public let status: Int32?

    public init(message: String, status: Int32? = nil) {
        self.message = message
        self.status = status
    }

    public var description: String { message }
}

/// The default session store: in memory, gone when the app quits. (Sendable: its session is behind a lock.)
public final class InMemorySessionStore: SessionStore, @unchecked Sendable {
    private let lock = NSLock()
    private var session: Session?

    public init() {}

    public func load() -> Session? {
        lock.lock()
        defer { lock.unlock() }
        return session
    }

    public func save(_ session: Session) {
        lock.lock()
        defer { lock.unlock() }
        self.session = session
    }

    public func clear() {
        lock.lock()
        defer { lock.unlock() }
        session = nil
    }
}

/// A session store in one file, as JSON, for Linux, servers and
/// command-line tools (in apps on Apple platforms prefer
/// `KeychainSessionStore`). The refresh token in it is a credential.
///
/// Every save writes a temporary file beside `url`, created readable and
/// writable by its owner only (0600), flushes it to disk and renames it over
/// `url`, so a crash never leaves a half-written session. A missing
/// directory is created owner-only (0700). `load()` answers nil when the
/// file does not exist or holds no session; an unreadable file throws.
/// (Sendable: it has no mutable state; the lock serializes the file's use.)
public final class FileSessionStore: SessionStore, @unchecked Sendable {
    public let url: URL
    private let lock = NSLock()

    public init(url: URL) {
        self.url = url
    }

    public func load() throws -> Session? {
        lock.lock()
        defer { lock.unlock() }
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let data = try Data(contentsOf: url)
        return try? KilnCoding.decoder().decode(Session.self, from: data)
    }

    public func save(_ session: Session) throws {
        lock.lock()
        defer { lock.unlock() }
        try replaceFile(with: try KilnCoding.encoder().encode(session))
    }

    public func clear() throws {
        lock.lock()
        defer { lock.unlock() }
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        try FileManager.default.removeItem(at: url)
    }

    private func replaceFile(with data: Data) throws {
        let dir = url.deletingLastPathComponent()
        if !FileManager.default.fileExists(atPath: dir.path) {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        #if canImport(Darwin) || canImport(Glibc) || canImport(Musl) || canImport(Android)
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp").path
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw FileSessionStore.posixError("cannot create \(tmp)") }
        var written = 0
        while written < data.count {
            let n = data.withUnsafeBytes { raw in write(fd, raw.baseAddress! + written, raw.count - written) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let error = FileSessionStore.posixError("cannot write \(tmp)")
                _ = close(fd)
                _ = unlink(tmp)
                throw error
            }
            written += n
        }
        if fsync(fd) != 0 {
            let error = FileSessionStore.posixError("cannot flush \(tmp)")
            _ = close(fd)
            _ = unlink(tmp)
            throw error
        }
        _ = close(fd)
        guard rename(tmp, url.path) == 0 else {
            let error = FileSessionStore.posixError("cannot rename \(tmp) to \(url.path)")
            _ = unlink(tmp)
            throw error
        }
        #else
        try data.write(to: url, options: .atomic)
        #endif
    }

    #if canImport(Darwin) || canImport(Glibc) || canImport(Musl) || canImport(Android)
    private static func posixError(_ what: String) -> KilnSessionStoreError {
        let code = errno
        return KilnSessionStoreError(message: "\(what): \(String(cString: strerror(code)))", status: code)
    }
    #endif
}

#if canImport(Security)
/// A session store in the Keychain, as a generic password item (Apple
/// platforms only: on Linux this type does not exist). The item is readable
/// after the device's first unlock and never leaves the device
/// (`kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`), so a refresh in the
/// background works. Pass an `accessGroup` to share the session with an app
/// extension.
public final class KeychainSessionStore: SessionStore, Sendable {
    public let service: String
    public let account: String
    public let accessGroup: String?

    /// - Parameters:
    ///   - service: the item's service; by default the bundle identifier + ".kiln".
    ///   - account: the item's account.
    ///   - accessGroup: a keychain access group shared with app extensions, or nil.
    public init(service: String? = nil, account: String = "session", accessGroup: String? = nil) {
        self.service = service ?? ((Bundle.main.bundleIdentifier ?? "app") + ".kiln")
        self.account = account
        self.accessGroup = accessGroup
    }

    private func query() -> [String: Any] {
        var q: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
        ]
        if let group = accessGroup { q[kSecAttrAccessGroup as String] = group }
        return q
    }

    public func load() throws -> Session? {
        var q = query()
        q[kSecReturnData as String] = true
        q[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(q as CFDictionary, &item)
        if status == errSecItemNotFound { return nil }
        guard status == errSecSuccess, let data = item as? Data else {
            throw KilnSessionStoreError(message: "the Keychain could not read the session (OSStatus \(status))", status: status)
        }
        return try? KilnCoding.decoder().decode(Session.self, from: data)
    }

    public func save(_ session: Session) throws {
        let data = try KilnCoding.encoder().encode(session)
        let attributes: [String: Any] = [
            kSecValueData as String: data,
            kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
        ]
        var status = SecItemUpdate(query() as CFDictionary, attributes as CFDictionary)
        if status == errSecItemNotFound {
            var add = query()
            for (k, v) in attributes { add[k] = v }
            status = SecItemAdd(add as CFDictionary, nil)
        }
        guard status == errSecSuccess else {
            throw KilnSessionStoreError(message: "the Keychain could not save the session (OSStatus \(status))", status: status)
        }
    }

    public func clear() throws {
        let status = SecItemDelete(query() as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw KilnSessionStoreError(message: "the Keychain could not delete the session (OSStatus \(status))", status: status)
        }
    }
}
#endif
