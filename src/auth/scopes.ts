/** What an API token can be allowed to do. A session (login) may do everything its user's role allows. */
export const API_SCOPES = ['profile:read', 'profile:write', 'sessions:read', 'admin'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

export function isApiScope(value: string): value is ApiScope {
  return (API_SCOPES as readonly string[]).includes(value);
}
