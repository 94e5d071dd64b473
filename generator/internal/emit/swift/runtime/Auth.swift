import Foundation

/// The signed-in user.
public struct User: Codable, Hashable, Sendable {
    public let id: String
    /// Nil for anonymous users.
    public let email: String?
    public let anonymous: Bool
    public let roles: [String]
    public let createdAt: Date
}

/// A session: the access token sent with every call and the refresh token that renews it.
public struct Session: Codable, Hashable, Sendable {
    public let accessToken: String
    public let refreshToken: String
    public let expiresAt: Date
    public let user: User

    public init(accessToken: String, refreshToken: String, expiresAt: Date, user: User) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresAt = expiresAt
        self.user = user
    }
}

/// An account at a sign-in provider that signs in to the user.
public struct Identity: Codable, Hashable, Sendable {
    public let provider: String
    public let email: String?
    public let emailVerified: Bool
    public let createdAt: Date
}

/// A pending TOTP factor: the secret and the otpauth:// URI to show as a QR code.
public struct TotpEnrollment: Codable, Hashable, Sendable {
    public let secret: String
    public let uri: String
}

/// An activated TOTP factor: the recovery codes (show them once; each works once) and the new aal2 session.
public struct TotpActivation: Codable, Hashable, Sendable {
    public let recoveryCodes: [String]
    public let session: Session
}

/// Sign up, sign in and out. Tokens are refreshed automatically before they expire and on UNAUTHENTICATED.
public struct Auth: Sendable {
    let transport: KilnTransport

    /// The current session, or nil when signed out (held in memory; see `SessionStore`).
    public var session: Session? { transport.currentSession }

    /// The signed-in user, or nil.
    public var currentUser: User? { session?.user }

    /// Creates an account (or signs in to an existing one with the same credentials) and stores the session.
    @discardableResult
    public func signUp(email: String, password: String) async throws -> Session {
        try await start("signUp", Auth.signUpDocument, credentials(email: email, password: password))
    }

    /// Signs in with email and password and stores the session.
    @discardableResult
    public func signIn(email: String, password: String) async throws -> Session {
        try await start("signIn", Auth.signInDocument, credentials(email: email, password: password))
    }

    /// Signs in as a new anonymous user (linkAccount adds credentials later).
    @discardableResult
    public func signInAnonymously() async throws -> Session {
        try await start("signInAnonymously", Auth.signInAnonymouslyDocument, [:])
    }

    /// Adds email and password to the signed-in (anonymous) account, keeping its id and data.
    @discardableResult
    public func linkAccount(email: String, password: String) async throws -> Session {
        try await transport.replacingSession {
            let data = try await transport.execute(Auth.linkAccountDocument, variables: credentials(email: email, password: password))
            let session = try KilnCoding.field(Session.self, "linkAccount", in: data)
            try transport.keep(session)
            return session
        }
    }

    /// Changes the password; other sessions end, this one continues with the returned session.
    @discardableResult
    public func changePassword(currentPassword: String, newPassword: String) async throws -> Session {
        try await transport.replacingSession {
            let data = try await transport.execute(Auth.changePasswordDocument, variables: ["currentPassword": .string(currentPassword), "newPassword": .string(newPassword)])
            let session = try KilnCoding.field(Session.self, "changePassword", in: data)
            try transport.keep(session)
            return session
        }
    }

    /// Asks for a password-reset email (always succeeds, so it reveals nothing about accounts).
    public func requestPasswordReset(email: String) async throws {
        _ = try await transport.execute(Auth.requestPasswordResetDocument, variables: ["email": .string(email)], authenticated: false)
    }

    /// Signs in with the ID token that Sign in with Apple, Google Sign-In or another configured provider's SDK
    /// produced, with the raw nonce the app generated for that sign-in (Apple's SDK takes its SHA-256 in hex),
    /// and stores the session. Signed in anonymously, the anonymous account becomes the provider's account,
    /// keeping its id and data (unless the identity or its verified email already has an account).
    @discardableResult
    public func signInWithIdToken(provider: String, idToken: String, nonce: String) async throws -> Session {
        try await startAsCaller("signInWithIdToken", Auth.signInWithIdTokenDocument, idTokenInput(provider: provider, idToken: idToken, nonce: nonce))
    }

    /// Adds a provider's identity to the signed-in account (an anonymous one keeps its id and data); continues with the returned session.
    @discardableResult
    public func linkIdentity(provider: String, idToken: String, nonce: String) async throws -> Session {
        try await transport.replacingSession {
            let data = try await transport.execute(Auth.linkIdentityDocument, variables: idTokenInput(provider: provider, idToken: idToken, nonce: nonce))
            let session = try KilnCoding.field(Session.self, "linkIdentity", in: data)
            try transport.keep(session)
            return session
        }
    }

    /// Mails a 6-digit sign-in code to the address (always succeeds, so it reveals nothing about accounts).
    /// With `redirectTo` (one of the server's KILN_AUTH_REDIRECT_URIS) the mail also carries a magic link to it
    /// with `?email=&code=`: pass those two to `signInWithEmailCode` when the app is opened with it.
    public func requestEmailCode(email: String, redirectTo: String? = nil) async throws {
        _ = try await transport.execute(Auth.requestEmailCodeDocument, variables: ["email": .string(email), "redirectTo": redirectTo.map(JSONValue.string) ?? .null], authenticated: false)
    }

    /// Starts a browser sign-in at a provider without a native SDK: returns the provider's URL to open with
    /// `ASWebAuthenticationSession`. The browser comes back to `redirectUri` (one of the server's
    /// KILN_AUTH_REDIRECT_URIS) with `?code=` for `signInWithRedirectCode`, or `?error=`. With `codeChallenge`
    /// (base64url SHA-256 of a random verifier the app keeps) the exchange needs the verifier.
    public func startRedirectSignIn(provider: String, redirectUri: String, codeChallenge: String? = nil) async throws -> URL {
        let input: JSONValue = .object(["provider": .string(provider), "redirectUri": .string(redirectUri), "codeChallenge": codeChallenge.map(JSONValue.string) ?? .null])
        let data = try await transport.execute(Auth.startRedirectSignInDocument, variables: ["input": input], authenticated: false)
        let raw = try KilnCoding.field(String.self, "startRedirectSignIn", in: data)
        guard let url = URL(string: raw) else { throw KilnError.decoding(message: "startRedirectSignIn: not a URL") }
        return url
    }

    /// Exchanges the one-time code the redirect brought back (two minutes, single use) for a session and stores it;
    /// an anonymous account keeps its id and data as with `signInWithIdToken`.
    @discardableResult
    public func signInWithRedirectCode(code: String, codeVerifier: String? = nil) async throws -> Session {
        try await startAsCaller("signInWithRedirectCode", Auth.signInWithRedirectCodeDocument, ["code": .string(code), "codeVerifier": codeVerifier.map(JSONValue.string) ?? .null])
    }

    /// Removes the signed-in user's identities at `provider` (never the account's last way to sign in).
    public func unlinkIdentity(provider: String) async throws {
        _ = try await transport.execute(Auth.unlinkIdentityDocument, variables: ["provider": .string(provider)])
    }

    /// The signed-in user's identities at sign-in providers, oldest first.
    public func identities() async throws -> [Identity] {
        struct Viewer: Decodable { let identities: [Identity] }
        let data = try await transport.execute(Auth.identitiesDocument)
        guard let viewer = try KilnCoding.field(Viewer?.self, "viewer", in: data) else {
            throw KilnError.unauthenticated(message: "not signed in")
        }
        return viewer.identities
    }

    /// Completes a sign-in that failed with `KilnError.mfaRequired`: its `mfaToken` and a code of the
    /// authenticator app (or a recovery code). Stores the aal2 session.
    @discardableResult
    public func completeMfaSignIn(mfaToken: String, code: String) async throws -> Session {
        try await start("completeMfaSignIn", Auth.completeMfaSignInDocument, ["mfaToken": .string(mfaToken), "code": .string(code)])
    }

    /// Starts a TOTP factor: show `uri` as a QR code, then `confirmTotp` with a first code.
    public func enrollTotp() async throws -> TotpEnrollment {
        let data = try await transport.execute(Auth.enrollTotpDocument)
        return try KilnCoding.field(TotpEnrollment.self, "enrollTotp", in: data)
    }

    /// Activates the pending TOTP factor with a first code; continues with the returned aal2 session (other sessions end).
    @discardableResult
    public func confirmTotp(code: String) async throws -> TotpActivation {
        try await transport.replacingSession {
            let data = try await transport.execute(Auth.confirmTotpDocument, variables: ["code": .string(code)])
            let activation = try KilnCoding.field(TotpActivation.self, "confirmTotp", in: data)
            try transport.keep(activation.session)
            return activation
        }
    }

    /// Removes the TOTP factor and its recovery codes (needs an aal2 session).
    public func disableTotp() async throws {
        _ = try await transport.execute(Auth.disableTotpDocument)
    }

    /// Signs in with the code of requestEmailCode's mail (creating the account when the address has none) and stores the session.
    @discardableResult
    public func signInWithEmailCode(email: String, code: String) async throws -> Session {
        try await start("signInWithEmailCode", Auth.signInWithEmailCodeDocument, ["email": .string(email), "code": .string(code)])
    }

    /// Mails the signed-in user a new code for the email the account holds (one is mailed after signUp and linkAccount).
    public func requestEmailVerification() async throws {
        _ = try await transport.execute(Auth.requestEmailVerificationDocument)
    }

    /// Marks the account's email verified with the code of the verification mail; continues with the returned session.
    @discardableResult
    public func verifyEmail(code: String) async throws -> Session {
        try await transport.replacingSession {
            let data = try await transport.execute(Auth.verifyEmailDocument, variables: ["code": .string(code)])
            let session = try KilnCoding.field(Session.self, "verifyEmail", in: data)
            try transport.keep(session)
            return session
        }
    }

    /// Ends every session of the signed-in user, on every device, and forgets this one.
    public func signOutEverywhere() async throws {
        try transport.checkOpen()
        do {
            _ = try await transport.execute(Auth.signOutEverywhereDocument)
        } catch {
            try? transport.forget()
            throw error
        }
        try transport.forget()
    }

    /// Renews the session now (calls do this by themselves when needed).
    @discardableResult
    public func refresh() async throws -> Session {
        guard try await transport.refresh(stale: nil) != nil, let session = session else {
            throw KilnError.unauthenticated(message: "no session to refresh")
        }
        return session
    }

    /// Ends this session on the server and forgets it locally (locally even when the server call fails).
    public func signOut() async throws {
        try transport.checkOpen()
        guard let s = session else { return }
        do {
            _ = try await transport.execute(Auth.signOutDocument, variables: ["refreshToken": .string(s.refreshToken)], authenticated: false)
        } catch {
            try? transport.forget()
            throw error
        }
        try transport.forget()
    }

    /// The user the server sees for the current session, or nil.
    public func viewer() async throws -> User? {
        let data = try await transport.execute(Auth.viewerDocument)
        return try KilnCoding.field(User?.self, "viewer", in: data)
    }

    /// start, sending the session's token when it is anonymous (the server then upgrades that account);
    /// an anonymous session the server no longer accepts is left out rather than failing the sign-in.
    private func startAsCaller(_ field: String, _ document: String, _ variables: [String: JSONValue]) async throws -> Session {
        guard transport.currentSession?.user.anonymous == true else {
            return try await start(field, document, variables)
        }
        let data: [String: JSONValue]
        do {
            data = try await transport.execute(document, variables: variables)
        } catch KilnError.unauthenticated {
            return try await start(field, document, variables)
        }
        let session = try KilnCoding.field(Session.self, field, in: data)
        try transport.keep(session)
        return session
    }

    private func start(_ field: String, _ document: String, _ variables: [String: JSONValue]) async throws -> Session {
        let data = try await transport.execute(document, variables: variables, authenticated: false)
        let session = try KilnCoding.field(Session.self, field, in: data)
        try transport.keep(session)
        return session
    }

    /// Registers this device's push token (APNs device token as hex) for the signed-in user; call it after each sign-in and whenever the token changes. Signing out removes it.
    public func registerDevice(token: String, appID: String, platform: DevicePlatform = .ios, locale: String? = nil) async throws {
        var input: [String: JSONValue] = ["platform": .string(platform.rawValue), "token": .string(token), "appID": .string(appID)]
        if let locale { input["locale"] = .string(locale) }
        _ = try await transport.execute(Auth.registerDeviceDocument, variables: ["input": .object(input)])
    }

    /// Stops push notifications to a device of the signed-in user; false when the user has no device with the token.
    @discardableResult
    public func unregisterDevice(token: String) async throws -> Bool {
        let data = try await transport.execute(Auth.unregisterDeviceDocument, variables: ["token": .string(token)])
        return try KilnCoding.field(Bool.self, "unregisterDevice", in: data)
    }

    /// Subscribes a device of the signed-in user to a topic; false when the user has no device with the token.
    @discardableResult
    public func subscribeToTopic(token: String, topic: String) async throws -> Bool {
        let data = try await transport.execute(Auth.subscribeToTopicDocument, variables: ["token": .string(token), "topic": .string(topic)])
        return try KilnCoding.field(Bool.self, "subscribeToTopic", in: data)
    }

    /// Unsubscribes a device of the signed-in user from a topic; false when the user has no device with the token.
    @discardableResult
    public func unsubscribeFromTopic(token: String, topic: String) async throws -> Bool {
        let data = try await transport.execute(Auth.unsubscribeFromTopicDocument, variables: ["token": .string(token), "topic": .string(topic)])
        return try KilnCoding.field(Bool.self, "unsubscribeFromTopic", in: data)
    }

    private func idTokenInput(provider: String, idToken: String, nonce: String) -> [String: JSONValue] {
        ["input": .object(["provider": .string(provider), "idToken": .string(idToken), "nonce": .string(nonce)])]
    }

    private func credentials(email: String, password: String) -> [String: JSONValue] {
        ["input": .object(["email": .string(email), "password": .string(password)])]
    }

    static let signUpDocument = "{{doc signUp}}"
    static let signInDocument = "{{doc signIn}}"
    static let signInAnonymouslyDocument = "{{doc signInAnonymously}}"
    static let linkAccountDocument = "{{doc linkAccount}}"
    static let signOutDocument = "{{doc signOut}}"
    static let viewerDocument = "{{doc viewer}}"
    static let changePasswordDocument = "{{doc changePassword}}"
    static let requestPasswordResetDocument = "{{doc requestPasswordReset}}"
    static let signOutEverywhereDocument = "{{doc signOutEverywhere}}"
    static let signInWithIdTokenDocument = "{{doc signInWithIdToken}}"
    static let linkIdentityDocument = "{{doc linkIdentity}}"
    static let requestEmailCodeDocument = "{{doc requestEmailCode}}"
    static let signInWithEmailCodeDocument = "{{doc signInWithEmailCode}}"
    static let requestEmailVerificationDocument = "{{doc requestEmailVerification}}"
    static let verifyEmailDocument = "{{doc verifyEmail}}"
    static let startRedirectSignInDocument = "{{doc startRedirectSignIn}}"
    static let signInWithRedirectCodeDocument = "{{doc signInWithRedirectCode}}"
    static let unlinkIdentityDocument = "{{doc unlinkIdentity}}"
    static let identitiesDocument = "{{doc identities}}"
    static let completeMfaSignInDocument = "{{doc completeMfaSignIn}}"
    static let enrollTotpDocument = "{{doc enrollTotp}}"
    static let confirmTotpDocument = "{{doc confirmTotp}}"
    static let disableTotpDocument = "{{doc disableTotp}}"
    static let registerDeviceDocument = "{{doc registerDevice}}"
    static let unregisterDeviceDocument = "{{doc unregisterDevice}}"
    static let subscribeToTopicDocument = "{{doc subscribeToTopic}}"
    static let unsubscribeFromTopicDocument = "{{doc unsubscribeFromTopic}}"
}

/// The push service of a device.
public enum DevicePlatform: String, Sendable {
    /// APNs.
    case ios = "IOS"
    /// FCM.
    case android = "ANDROID"
}
