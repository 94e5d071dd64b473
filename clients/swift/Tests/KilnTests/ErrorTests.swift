// Hand-written (not generated): every GraphQL error code and HTTP failure
// becomes its KilnError case.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import Kiln

final class ErrorTests: XCTestCase {
    func testGraphQLErrorCodes() {
        func from(_ code: String?, _ ext: String = "") -> KilnError {
            let codePart = code.map { "\"code\":\"\($0)\"" } ?? ""
            let sep = !codePart.isEmpty && !ext.isEmpty ? "," : ""
            return KilnError.from(graphQLError: json("{\"message\":\"m\",\"extensions\":{\(codePart)\(sep)\(ext)}}"))
        }
        XCTAssertEqual(from("NOT_FOUND"), .notFound(message: "m"))
        XCTAssertEqual(from("CONFLICT"), .conflict(message: "m"))
        XCTAssertEqual(from("BAD_USER_INPUT", #""field":"handle""#), .validation(field: "handle", message: "m", reason: nil))
        XCTAssertEqual(from("BAD_USER_INPUT", #""field":"avatarID","reason":"TOO_LARGE""#), .validation(field: "avatarID", message: "m", reason: "TOO_LARGE"))
        XCTAssertEqual(from("BAD_USER_INPUT", #""reason":"UNSUPPORTED_CONTENT_TYPE""#), .validation(field: nil, message: "m", reason: "UNSUPPORTED_CONTENT_TYPE"))
        XCTAssertEqual(from("VALIDATION"), .validation(field: nil, message: "m", reason: nil))
        XCTAssertEqual(from("GRAPHQL_VALIDATION_FAILED"), .validation(field: nil, message: "m", reason: nil))
        XCTAssertEqual(from("GRAPHQL_PARSE_FAILED"), .validation(field: nil, message: "m", reason: nil))
        XCTAssertEqual(from("UNAUTHENTICATED"), .unauthenticated(message: "m"))
        XCTAssertEqual(from("FORBIDDEN"), .forbidden(message: "m"))
        XCTAssertEqual(from("RATE_LIMITED", #""retryAfter":7"#), .rateLimited(retryAfter: 7, message: "m"))
        XCTAssertEqual(KilnError.from(graphQLError: json(#"{"message":"m","extensions":{"code":"RATE_LIMITED"}}"#), retryAfter: 9), .rateLimited(retryAfter: 9, message: "m"))
        XCTAssertEqual(from("UNAVAILABLE"), .server(code: "UNAVAILABLE", message: "m"))
        XCTAssertEqual(from("INTERNAL_SERVER_ERROR"), .server(code: "INTERNAL_SERVER_ERROR", message: "m"))
        XCTAssertEqual(from("PERSISTED_QUERY_NOT_FOUND"), .server(code: "PERSISTED_QUERY_NOT_FOUND", message: "m"))
        XCTAssertEqual(from("TOO_MANY_SUBSCRIPTIONS"), .server(code: "TOO_MANY_SUBSCRIPTIONS", message: "m"))
        XCTAssertEqual(from("RESYNC"), .server(code: "RESYNC", message: "m"))
        XCTAssertEqual(from(nil), .server(code: nil, message: "m"))
        XCTAssertEqual(KilnError.from(graphQLError: json("{}")), .server(code: nil, message: "unknown error"))
    }

    func testHTTPFailures() async throws {
        let server = StubServer { req in
            switch req.variables?["id"]?.stringValue {
            case "401": return .init(status: 401, headers: [:], body: "no")
            case "429": return .init(status: 429, headers: ["Retry-After": "12"], body: "slow down")
            case "500": return .init(status: 500, headers: [:], body: "<html>oops</html>")
            case "errors429": return StubServer.error("RATE_LIMITED")
            case "nodata": return .init(body: "{}")
            default: return StubServer.error("NOT_FOUND", "Post 1 not found")
            }
        }
        let kiln = server.client()
        func failure(_ id: String) async -> KilnError? {
            do {
                _ = try await kiln.posts.get(id: id)
                return nil
            } catch {
                return error as? KilnError
            }
        }
        let e401 = await failure("401")
        XCTAssertEqual(e401, .unauthenticated(message: "no"))
        let e429 = await failure("429")
        XCTAssertEqual(e429, .rateLimited(retryAfter: 12, message: "slow down"))
        let e500 = await failure("500")
        XCTAssertEqual(e500, .server(code: "HTTP_500", message: "<html>oops</html>"))
        let noData = await failure("nodata")
        guard case .decoding? = noData else { return XCTFail("\(String(describing: noData))") }
        let notFound = await failure("x")
        XCTAssertEqual(notFound, .notFound(message: "Post 1 not found"))

        // An unreachable server is a network error.
        let config = URLSessionConfiguration.ephemeral
        let offline = KilnClient(config: KilnConfig(url: URL(string: "http://127.0.0.1:1/graphql")!, urlSession: URLSession(configuration: config)))
        do {
            _ = try await offline.posts.get(id: "1")
            XCTFail("reached a closed port")
        } catch KilnError.network {
        }
    }
}
