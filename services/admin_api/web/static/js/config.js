// @ts-check
// The deployment's page config (/admin/config.json: admin_api/web/config.py): where tokens come
// from, where "Sign in again" leads, how often live mode polls.

/**
 * @typedef {object} PageConfig
 * @property {string | null} [token_url] answers {access_token} for the signed-in admin
 * @property {string | null} [sign_in_url] where "Sign in again" leads
 * @property {number} [live_interval_seconds] how often live mode refreshes the list
 * @property {number} [page_size] rows per list request
 * @property {boolean} [fragment_sign_in] development only: sign in from a #token= link
 */

/**
 * The config, or `{}` (development's defaults) when the server does not answer it.
 * @returns {Promise<PageConfig>}
 */
export async function loadConfig() {
  try {
    const response = await fetch(new URL("config.json", document.baseURI), { cache: "no-store" });
    if (response.ok) return /** @type {PageConfig} */ (await response.json());
  } catch {
    // The defaults serve development.
  }
  return {};
}
