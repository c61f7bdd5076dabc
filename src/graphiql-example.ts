/** The document GraphiQL opens on: the whole register → login → me flow, ready to run. */
export const graphiqlExample = `# Welcome to Gatehouse.
#
# 1. Run "Register" (once), or "Login" if the user exists already. Both return an accessToken.
# 2. Open the "Headers" tab below and put the token there:
#      { "Authorization": "Bearer <accessToken>" }
# 3. Run "Me".
# When the access token expires (expiresIn seconds), run "Refresh" with the refreshToken:
# it returns new tokens and the old refresh token stops working.

mutation Register {
  register(input: { username: "alice", password: "correct horse battery staple", email: "alice@example.com" }) {
    ...Tokens
    ...Failure
    ... on ValidationError { fieldErrors { field message } }
  }
}

mutation Login {
  login(input: { username: "alice", password: "correct horse battery staple" }) {
    ...Tokens
    ...Failure
  }
}

query Me {
  me { id username email fullname role createdAt }
}

mutation Refresh {
  refresh(refreshToken: "paste the refreshToken here") {
    ...Tokens
    ...Failure
  }
}

fragment Tokens on AuthPayload {
  accessToken
  refreshToken
  expiresIn
  user { id username role }
}

fragment Failure on Error {
  code
  message
}
`;
