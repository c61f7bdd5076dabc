import { describe, expect, it, vi } from 'vitest';
import { createTestApp } from './support/app.js';

const app = await createTestApp();

describe('GET /health', () => {
  it('answers 200 while the database answers, to GET and to HEAD (load-balancer probes)', async () => {
    expect((await app.yoga.fetch('http://gatehouse.test/health')).status).toBe(200);
    expect((await app.yoga.fetch('http://gatehouse.test/health', { method: 'HEAD' })).status).toBe(200);
  });

  it('answers 503, without details, when the database fails', async () => {
    const query = vi.spyOn(app.services.db, '$queryRawUnsafe').mockRejectedValueOnce(new Error('SQLITE_IOERR: disk I/O error at /secret/path'));
    const response = await app.yoga.fetch('http://gatehouse.test/health');
    expect(query).toHaveBeenCalled();
    expect(response.status).toBe(503);
    expect(await response.text()).not.toContain('secret');
    query.mockRestore();
  });
});
