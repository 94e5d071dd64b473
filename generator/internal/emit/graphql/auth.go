package graphql

// authSDL is graph/auth.graphql: accounts and sessions.
const authSDL = `"""
The signed-in user.
"""
type Viewer {
  id: ID!
  "Null for anonymous users."
  email: String
  anonymous: Boolean!
  roles: [String!]!
  createdAt: Time!
}

"""
A session: a short-lived access token (send it as Authorization: Bearer) and
a refresh token that gets a new pair from refreshSession.
"""
type AuthPayload {
  accessToken: String!
  refreshToken: String!
  "When the access token expires."
  expiresAt: Time!
  user: Viewer!
}

input CredentialsInput {
  email: String!
  password: String!
}

extend type Query {
  "The signed-in user; null without a valid access token."
  viewer: Viewer
}

extend type Mutation {
  "Creates an account, or signs in when the password opens the email's account; an email that has an account with another password gets a separate pending account. Responses never reveal which emails exist."
  signUp(input: CredentialsInput!): AuthPayload!
  signIn(input: CredentialsInput!): AuthPayload!
  "An account without email; linkAccount adds credentials later, keeping its id and data."
  signInAnonymously: AuthPayload!
  "Rotates the refresh token; replaying an already used token ends the whole session."
  refreshSession(refreshToken: String!): AuthPayload!
  signOut(refreshToken: String!): Boolean!
  "Ends every session of the signed-in user."
  signOutEverywhere: Boolean!
  changePassword(currentPassword: String!, newPassword: String!): AuthPayload!
  linkAccount(input: CredentialsInput!): AuthPayload!
  "Deletes the signed-in user's account (anonymous accounts need no password)."
  deleteAccount(password: String): Boolean!
  "Sends a reset link if the email has an account; always returns true."
  requestPasswordReset(email: String!): Boolean!
  resetPassword(token: String!, newPassword: String!): Boolean!
  "Admins only."
  assignRole(userID: ID!, role: String!): Boolean!
  "Admins only."
  revokeRole(userID: ID!, role: String!): Boolean!
  "Admins only: replaces a user's custom claims, read in rules as $viewer.claims.<name> (e.g. a tenant id)."
  setClaims(userID: ID!, claims: JSON!): Boolean!
}
`
