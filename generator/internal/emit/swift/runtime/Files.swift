import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An uploaded file. `url` is a signed download URL (see `Files.url(id:expiresIn:)` for a fresh one).
public struct KilnFile: Codable, Hashable, Sendable, Identifiable {
    public let id: String
    public let filename: String
    public let contentType: String
    public let size: Int
    public let sha256: String?
    public let url: String
    public let createdAt: Date
}

/// A header the upload URL requires.
public struct UploadHeader: Codable, Hashable, Sendable {
    public let name: String
    public let value: String
}

/// Where and how to send a file's bytes (from createUpload).
public struct UploadTicket: Codable, Hashable, Sendable {
    public let fileId: String
    public let url: String
    public let method: String
    public let headers: [UploadHeader]
    public let expiresAt: Date
}

/// Reports upload progress: (bytes sent, total bytes).
public typealias UploadProgress = @Sendable (Int64, Int64) -> Void

/// Reports an upload's progress. (Sendable: immutable; an NSObject subclass cannot be checked.)
final class KilnProgressDelegate: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    let progress: UploadProgress

    init(progress: @escaping UploadProgress) {
        self.progress = progress
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didSendBodyData bytesSent: Int64, totalBytesSent: Int64, totalBytesExpectedToSend: Int64) {
        progress(totalBytesSent, totalBytesExpectedToSend)
    }
}

/// File uploads through the ticket flow: createUpload, send the bytes with
/// exactly the ticket's method and headers, completeUpload. Attach the file
/// by passing its id in a model input (e.g. `avatarID`, `attachmentIDs`).
public struct Files: Sendable {
    let transport: KilnTransport

    /// Uploads `data`.
    public func upload(data: Data, filename: String, contentType: String, progress: UploadProgress? = nil) async throws -> KilnFile {
        let ticket = try await createUpload(filename: filename, contentType: contentType, size: data.count)
        let request = try uploadRequest(ticket)
        let delegate = progress.map { KilnProgressDelegate(progress: $0) }
        let response: URLResponse
        do {
            (_, response) = try await transport.withURLSession { session in try await session.upload(for: request, from: data, delegate: delegate) }
        } catch let error as KilnError {
            throw error
        } catch {
            throw KilnError.network(message: "upload failed: \(error.localizedDescription)")
        }
        return try await complete(ticket, response)
    }

    /// Uploads the file at `fileURL`, streaming it from disk.
    public func upload(fileURL: URL, contentType: String, filename: String? = nil, progress: UploadProgress? = nil) async throws -> KilnFile {
        let size = try FileManager.default.attributesOfItem(atPath: fileURL.path)[.size] as? Int ?? 0
        let ticket = try await createUpload(filename: filename ?? fileURL.lastPathComponent, contentType: contentType, size: size)
        let request = try uploadRequest(ticket)
        let delegate = progress.map { KilnProgressDelegate(progress: $0) }
        let response: URLResponse
        do {
            (_, response) = try await transport.withURLSession { session in try await session.upload(for: request, fromFile: fileURL, delegate: delegate) }
        } catch let error as KilnError {
            throw error
        } catch {
            throw KilnError.network(message: "upload failed: \(error.localizedDescription)")
        }
        return try await complete(ticket, response)
    }

    /// Uploads a small file in one request to the GraphQL endpoint (uploadFile,
    /// multipart; up to the server's KILN_MAX_MULTIPART_SIZE) instead of the
    /// ticket flow; the same checks apply.
    public func uploadSmall(data: Data, filename: String, contentType: String) async throws -> KilnFile {
        let result = try await transport.executeUpload(Files.uploadFileDocument, filename: filename, contentType: contentType, data: data)
        return try KilnCoding.field(KilnFile.self, "uploadFile", in: result)
    }

    /// The file with a download URL valid for `expiresIn` seconds, or nil.
    public func get(id: String, expiresIn: Int = 900) async throws -> KilnFile? {
        let data = try await transport.execute(Files.fileDocument, variables: ["id": .string(id), "expiresIn": .int(expiresIn)])
        return try KilnCoding.field(KilnFile?.self, "node", in: data)
    }

    /// A fresh signed download URL for a file.
    public func url(id: String, expiresIn: Int = 900) async throws -> URL {
        guard let file = try await get(id: id, expiresIn: expiresIn), let url = URL(string: file.url) else {
            throw KilnError.notFound(message: "file \(id) not found")
        }
        return url
    }

    /// A signed URL of a resized rendition of an image file (JPEG, PNG, GIF or
    /// WebP), made by the server on the first request for it. `width` x
    /// `height` must be one of the server's allowed sizes (KILN_IMAGE_SIZES,
    /// by default 64, 128, 256, 512 and 1024 square); others fail with
    /// `.validation(reason: "UNSUPPORTED_IMAGE_SIZE")`. The format defaults to
    /// PNG for PNG originals and JPEG for the others.
    public func imageURL(id: String, width: Int, height: Int, fit: ImageFit = .cover, format: ImageFormat? = nil, expiresIn: Int = 900) async throws -> URL {
        var transform: [String: JSONValue] = ["width": .int(width), "height": .int(height), "fit": .string(fit.rawValue)]
        if let format { transform["format"] = .string(format.rawValue) }
        let data = try await transport.execute(Files.fileImageDocument, variables: ["id": .string(id), "expiresIn": .int(expiresIn), "transform": .object(transform)])
        struct Node: Decodable { let url: String }
        guard let node = try KilnCoding.field(Node?.self, "node", in: data), let url = URL(string: node.url) else {
            throw KilnError.notFound(message: "file \(id) not found")
        }
        return url
    }

    /// Downloads a file's bytes.
    public func download(id: String) async throws -> Data {
        let u = try await url(id: id, expiresIn: 300)
        do {
            let (data, response) = try await transport.withURLSession { session in try await session.data(from: u) }
            if let http = response as? HTTPURLResponse, http.statusCode >= 300 {
                throw KilnError.server(code: "HTTP_\(http.statusCode)", message: "download failed")
            }
            return data
        } catch let error as KilnError {
            throw error
        } catch {
            throw KilnError.network(message: "download failed: \(error.localizedDescription)")
        }
    }

    private func createUpload(filename: String, contentType: String, size: Int) async throws -> UploadTicket {
        let input: [String: JSONValue] = ["filename": .string(filename), "contentType": .string(contentType), "size": .int(size)]
        let data = try await transport.execute(Files.createUploadDocument, variables: ["input": .object(input)])
        return try KilnCoding.field(UploadTicket.self, "createUpload", in: data)
    }

    private func uploadRequest(_ ticket: UploadTicket) throws -> URLRequest {
        guard let url = URL(string: ticket.url) else { throw KilnError.decoding(message: "bad upload URL \(ticket.url)") }
        var request = URLRequest(url: url)
        request.httpMethod = ticket.method
        for h in ticket.headers { request.setValue(h.value, forHTTPHeaderField: h.name) }
        return request
    }

    private func complete(_ ticket: UploadTicket, _ response: URLResponse) async throws -> KilnFile {
        if let http = response as? HTTPURLResponse, http.statusCode >= 300 {
            throw KilnError.server(code: "HTTP_\(http.statusCode)", message: "upload failed")
        }
        let data = try await transport.execute(Files.completeUploadDocument, variables: ["fileId": .string(ticket.fileId)])
        return try KilnCoding.field(KilnFile.self, "completeUpload", in: data)
    }

    static let createUploadDocument = "{{doc createUpload}}"
    static let completeUploadDocument = "{{doc completeUpload}}"
    static let fileDocument = "{{doc file}}"
    static let fileImageDocument = "{{doc fileImage}}"
    static let uploadFileDocument = "{{doc uploadFile}}"
}

/// How an image rendition fills its box (`Files.imageURL`).
public enum ImageFit: String, Sendable, CaseIterable {
    /// Fill the box, cropping what overflows (centred).
    case cover = "COVER"
    /// Fit the whole image inside the box, keeping its aspect ratio.
    case contain = "CONTAIN"
}

/// The encoding of an image rendition (`Files.imageURL`).
public enum ImageFormat: String, Sendable, CaseIterable {
    case jpeg = "JPEG"
    case png = "PNG"
}
