import { describe, expect, it } from 'vitest';
import { nginxConfig } from '../../src/reload/nginx.js';
import { testKey } from '../helpers/secrets.js';

const base = {
  prefix: '/state/nginx',
  listenHost: '127.0.0.1',
  listenPort: 4000,
  upstreamPort: 4001,
};

describe("the blue-green front's key aliases (master key grace period)", () => {
  it('maps the old key to the new one in both headers LiteLLM reads', () => {
    const from = testKey('sk-master-');
    const to = testKey('sk-');
    const config = nginxConfig({ ...base, keyAliases: [{ from, to }] });
    expect(config).toContain(`"Bearer ${from}" "Bearer ${to}";`);
    expect(config).toContain(`"${from}" "${to}";`);
    expect(config).toContain('proxy_set_header Authorization $modelcenter_authorization;');
    expect(config).toContain('proxy_set_header x-api-key $modelcenter_x_api_key;');
  });

  it('without aliases the config is the plain front (no key in it)', () => {
    const plain = nginxConfig(base);
    expect(plain).not.toContain('map ');
    expect(plain).not.toContain('Authorization');
    expect(nginxConfig({ ...base, keyAliases: [] })).toBe(plain);
  });

  it('a key nginx could not quote is never written into the config', () => {
    const config = nginxConfig({
      ...base,
      keyAliases: [{ from: 'sk-"; return 200; #-long-enough', to: testKey() }],
    });
    expect(config).toBe(nginxConfig(base));
  });
});
