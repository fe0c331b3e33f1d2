/**
 * Products and device groups over the real operator gRPC API of a live shard: the five default
 * groups, tenant scoping, validation, and moving claimed devices between groups.
 */
import { describe, expect, it } from 'vitest';
import {
  bootedDevice,
  createTestTenant,
  endorseAndClaim,
  uniqueSeed,
  useShard,
  callError,
} from '../../fixtures/shard.js';

const env = useShard({ seed: 'products' });

describe('operator api products and device groups', () => {
  it('products - a new product gets the five default groups with their feeds and policies', async () => {
    const t = await createTestTenant(env().admin, 'products-defaults');
    const created = await t.client.createProduct('Smart Kettle', 'MT3620 kettle');
    expect(created.product?.productId).toMatch(/^p-[0-9a-f]{16}$/);
    expect(created.product?.name).toBe('Smart Kettle');
    expect(created.deviceGroups.map((g) => [g.name, g.osFeed, g.updatePolicy])).toEqual([
      ['Development', 'RETAIL', 'SYSTEM_ONLY'],
      ['Field Test', 'RETAIL', 'ACCEPT_ALL'],
      ['Field Test OS Evaluation', 'RETAIL_EVAL', 'ACCEPT_ALL'],
      ['Production', 'RETAIL', 'ACCEPT_ALL'],
      ['Production OS Evaluation', 'RETAIL_EVAL', 'ACCEPT_ALL'],
    ]);
    const listed = await t.client.listDeviceGroups(created.product?.productId ?? '');
    expect(listed.deviceGroups.map((g) => g.deviceGroupId)).toEqual(
      created.deviceGroups.map((g) => g.deviceGroupId),
    );
    expect((await t.client.listProducts()).products.map((p) => p.name)).toEqual(['Smart Kettle']);
  });

  it('products - names are unique per tenant and another tenant sees nothing', async () => {
    const a = await createTestTenant(env().admin, 'products-a');
    const b = await createTestTenant(env().admin, 'products-b');
    const product = (await a.client.createProduct('Thermostat')).product?.productId ?? '';
    expect((await callError(a.client.createProduct('Thermostat'))).code).toBe('ALREADY_EXISTS');
    // The same name in another tenant is fine; A's product is invisible to B.
    await b.client.createProduct('Thermostat');
    expect((await b.client.listProducts()).products).toHaveLength(1);
    expect((await callError(b.client.listDeviceGroups(product))).code).toBe('NOT_FOUND');
    expect((await callError(b.client.createDeviceGroup({ productId: product, name: 'Canary' }))).code).toBe(
      'NOT_FOUND',
    );
  });

  it('products - custom groups are validated and created', async () => {
    const t = await createTestTenant(env().admin, 'products-custom');
    const product = (await t.client.createProduct('Lamp')).product?.productId ?? '';
    const canary = await t.client.createDeviceGroup({
      productId: product,
      name: 'Canary',
      osFeed: 'RETAIL_EVAL',
    });
    expect(canary.deviceGroup).toMatchObject({
      name: 'Canary',
      osFeed: 'RETAIL_EVAL',
      updatePolicy: 'ACCEPT_ALL',
      devices: 0,
    });
    expect((await callError(t.client.createDeviceGroup({ productId: product, name: 'Canary' }))).code).toBe(
      'ALREADY_EXISTS',
    );
    const bad = await callError(
      t.client.createDeviceGroup({ productId: product, name: 'X', osFeed: 'BETA' }),
    );
    expect([bad.code, bad.message]).toEqual([
      'MALFORMED_INPUT',
      'os_feed must be one of RETAIL, RETAIL_EVAL, got "BETA"',
    ]);
    const badId = await callError(t.client.listDeviceGroups('p-nothex'));
    expect(badId.code).toBe('MALFORMED_INPUT');
    expect(badId.message).toContain('product_id');
    expect((await callError(t.client.createProduct('   '))).code).toBe('MALFORMED_INPUT');
  });

  it('products - claimed devices move between groups; unknown and foreign devices are refused', async () => {
    const { admin } = env();
    const a = await createTestTenant(admin, 'groups-a');
    const b = await createTestTenant(admin, 'groups-b');
    const mine = [bootedDevice(uniqueSeed('grp-a1')), bootedDevice(uniqueSeed('grp-a2'))];
    const theirs = bootedDevice(uniqueSeed('grp-b1'));
    await endorseAndClaim(admin, a.client, mine);
    await endorseAndClaim(admin, b.client, [theirs]);
    const created = await a.client.createProduct('Pump');
    const [dev, field] = created.deviceGroups;
    if (dev === undefined || field === undefined) throw new Error('no default groups');

    const r1 = await a.client.assignDevices(dev.deviceGroupId, [
      ...mine.map((d) => d.deviceId),
      theirs.deviceId,
    ]);
    expect(r1.assigned).toBe(2);
    expect(r1.rejected.map((x) => [x.deviceId, x.code])).toEqual([[theirs.deviceId, 'NOT_FOUND']]);
    expect((await a.client.getDevice(mine[0]?.deviceId ?? '')).device?.deviceGroupId).toBe(dev.deviceGroupId);

    // Staging by moving devices: one device goes to Field Test.
    await a.client.assignDevices(field.deviceGroupId, [mine[1]?.deviceId ?? '']);
    const counts = (await a.client.listDeviceGroups(created.product?.productId ?? '')).deviceGroups.map(
      (g) => [g.name, g.devices],
    );
    expect(counts.slice(0, 2)).toEqual([
      ['Development', 1],
      ['Field Test', 1],
    ]);
    // B can neither see A's group nor put its own device there.
    expect((await callError(b.client.assignDevices(dev.deviceGroupId, [theirs.deviceId]))).code).toBe(
      'NOT_FOUND',
    );
  });
});
