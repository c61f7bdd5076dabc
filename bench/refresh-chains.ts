/** A session's current refresh token: each answer's new token is the next request's (single use). */
export interface RefreshChain {
  refreshToken: string;
}

/**
 * The request body and answer check of a refresh measurement walking `queue`: a chain is taken for a
 * request and put back with its rotated token once the answer came, so no token is ever presented twice;
 * a chain whose answer never came (the end of a round) is dropped. `exhausted` is the error when the
 * queue runs dry (too few sessions for the load).
 */
export function refreshChainRequests(query: string, queue: RefreshChain[], exhausted: string) {
  return {
    body: () => {
      const chain = queue.shift();
      if (!chain) throw new Error(exhausted);
      return { body: JSON.stringify({ query, variables: { token: chain.refreshToken } }), tag: chain as unknown };
    },
    check: (text: string, tag: unknown) => {
      const match = /"refreshToken":"([^"]+)"/.exec(text);
      if (!match || text.includes('"errors"')) return false;
      (tag as RefreshChain).refreshToken = match[1]!;
      queue.push(tag as RefreshChain);
      return true;
    },
  };
}
