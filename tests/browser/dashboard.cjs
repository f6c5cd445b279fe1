// The built-in dashboard (GET /dashboard) in headless Chromium, driven by playwright-core,
// against a running service with seeded data. Prints one JSON object of what it read off
// the page; tests/api/dashboard.rs compares it with the API's own answers.
//
// usage: BROWSER_LIBS=DIR [CHROMIUM=/usr/bin/chromium] node dashboard.cjs SERVICE READ_KEY INGEST_KEY ADMIN_TOKEN OUT_DIR
//   DIR holds node_modules/playwright-core (scripts/segment-sdks.sh installs it); OUT_DIR
//   receives the screenshots (chart.png, panels.png, funnel.png, filtered.png, phone.png,
//   dashboard.png).
const path = require('node:path')
const fs = require('node:fs')
const { createRequire } = require('node:module')

const libs = createRequire(path.join(process.env.BROWSER_LIBS, 'package.json'))
const { chromium } = libs('playwright-core')
const [service, readKey, ingestKey, adminToken, outDir] = process.argv.slice(2)
const dashboard = `${service}/dashboard`
const TIMEOUT = 30000

const log = []
const problems = []

function watch(page, name) {
  page.on('console', (message) => {
    log.push(`${name} console ${message.type()}: ${message.text()}`)
    // HTTP errors are what some steps provoke; anything else (a CSP violation, a script
    // error) is a problem.
    const provoked = message.text().startsWith('Failed to load resource: the server responded with a status of')
    if (message.type() === 'error' && !provoked) problems.push(message.text())
  })
  page.on('pageerror', (error) => problems.push(`${name}: ${error.message}`))
  page.on('request', (request) => log.push(`${name} ${request.method()} ${request.url()}`))
  return page
}

async function waitLoads(page, atLeast) {
  await page.waitForFunction(
    (n) => document.body.dataset.state === 'ready' && Number(document.body.dataset.loads || 0) >= n,
    atLeast,
    { timeout: TIMEOUT },
  )
}

// What a person reads on the page, as numbers where it shows numbers.
async function readBoard(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent.trim()
    const digits = (id) => Number(text(id).replace(/[^0-9]/g, ''))
    const rows = (id) => Array.from(document.getElementById(id).tBodies[0].rows, (row) =>
      Array.from(row.cells, (cell) => cell.textContent.trim()))
    const eventRows = Array.from(document.getElementById('latest').tBodies[0].rows).filter((row) => row.cells.length === 6)
    const latest = eventRows.map((row) => ({
      eventType: row.cells[1].textContent.trim(),
      user: row.cells[3].textContent.trim(),
      valid: row.cells[4].textContent.trim(),
      errors: Array.from(row.cells[5].querySelectorAll('li'), (item) => item.textContent.trim()),
    }))
    const board = document.getElementById('board')
    return {
      totalEvents: digits('total-events'),
      validEvents: digits('valid-events'),
      invalidEvents: digits('invalid-events'),
      validShare: text('valid-share'),
      invalidShare: text('invalid-share'),
      uniqueUsers: digits('unique-users'),
      visits: digits('visits'),
      bounceRate: text('bounce-rate'),
      visitDuration: text('visit-duration'),
      topTypes: rows('top-types').map(([name, count]) => [name, Number(count.replace(/[^0-9]/g, ''))]),
      topSubsystems: rows('top-subsystems').map(([, count]) => Number(count.replace(/[^0-9]/g, ''))),
      latest,
      latestIds: document.getElementById('latest').dataset.eventIds.split(',').filter(Boolean),
      status: text('status'),
      from: board.dataset.from,
      to: board.dataset.to,
      interval: board.dataset.interval,
      tz: board.dataset.tz,
      chartSummary: text('chart-summary'),
      emptyShown: !document.getElementById('empty').hidden,
      who: text('who'),
      botShare: text('bot-share'),
      botEvents: text('bot-events'),
      chips: Array.from(document.querySelectorAll('#chips .chip'), (chip) => ({ key: chip.dataset.key, value: chip.dataset.value })),
      chipsShown: !document.getElementById('filters').hidden,
      panels: Object.fromEntries(Array.from(document.querySelectorAll('#panels .panel'), (panel) => [panel.id.replace('panel-', ''), {
        dimension: panel.dataset.dimension,
        state: panel.dataset.state,
        rows: Array.from(panel.querySelector('tbody').rows, (row) => ({
          value: row.dataset.value === undefined ? null : row.dataset.value,
          cells: Array.from(row.cells, (cell) => cell.textContent.trim()),
        })),
      }])),
    }
  })
}

// Runs `action`, then waits for the page's next load to finish.
async function nextLoad(page, action) {
  const loads = await page.evaluate(() => Number(document.body.dataset.loads || 0))
  await action()
  await waitLoads(page, loads + 1)
}

// The query of every report request made while `action` ran (and the load it caused).
async function reportQueries(page, action) {
  const queries = []
  const listen = (request) => {
    const url = new URL(request.url())
    if (/\/api\/v1\/reports\/(summary|timeseries|breakdown)$/.test(url.pathname)) {
      queries.push({ report: url.pathname.split('/').pop(), where: url.searchParams.getAll('where'), includeBots: url.searchParams.get('includeBots') })
    }
  }
  page.on('request', listen)
  await nextLoad(page, action)
  page.off('request', listen)
  return queries
}

// A click on a page in the "Top pages" panel filters everything; removing its chip
// restores the page; the bot toggle counts bots in every report.
async function filterAndBots(page) {
  const clickQueries = await reportQueries(page, () => page.click('#panel-pages tr[data-value="/docs"] button.pick'))
  const filtered = await readBoard(page)
  await page.screenshot({ path: path.join(outDir, 'filtered.png'), fullPage: true })
  const removeQueries = await reportQueries(page, () => page.click('#chips .chip[data-key="page"]'))
  const restored = await readBoard(page)
  const botQueries = await reportQueries(page, () => page.check('#include-bots'))
  const withBots = await readBoard(page)
  await nextLoad(page, () => page.uncheck('#include-bots'))
  const withoutBots = await readBoard(page)
  await nextLoad(page, () => page.selectOption('#panel-campaigns-dimension', 'utmSource'))
  const bySource = (await readBoard(page)).panels.campaigns
  await nextLoad(page, () => page.selectOption('#panel-pages-dimension', 'entryPage'))
  const byEntryPage = await readBoard(page)
  await nextLoad(page, () => page.selectOption('#panel-pages-dimension', 'page'))
  return { clickQueries, filtered, removeQueries, restored, botQueries, withBots, withoutBots, bySource, byEntryPage }
}

// The funnel (page view → sign-up → purchase, within a day) and the retention grid (page
// view, then purchase, by day), each shown with its button, read as a person reads them.
async function peopleViews(page) {
  const ready = (id) => page.waitForFunction((card) => document.getElementById(card).dataset.state === 'ready', id, { timeout: TIMEOUT })
  await page.selectOption('#funnel-step-1', 'page_view')
  await page.selectOption('#funnel-step-2', 'signup')
  await page.selectOption('#funnel-step-3', 'purchase')
  await page.selectOption('#funnel-window', '1d')
  await page.click('#funnel-form button[type=submit]')
  await ready('funnel-card')
  await page.selectOption('#retention-start', 'page_view')
  await page.selectOption('#retention-return', 'purchase')
  await page.click('#retention-form button[type=submit]')
  await ready('retention-card')
  await page.locator('#funnel-card').screenshot({ path: path.join(outDir, 'funnel.png') })
  return page.evaluate(() => {
    const rows = (id) => Array.from(document.getElementById(id).tBodies[0].rows, (row) =>
      Array.from(row.cells, (cell) => cell.textContent.trim()))
    const card = (id) => ({ from: document.getElementById(id).dataset.from, to: document.getElementById(id).dataset.to })
    return {
      tz: document.getElementById('tz').value,
      funnel: { ...card('funnel-card'), rows: rows('funnel') },
      retention: {
        ...card('retention-card'),
        rows: rows('retention'),
        returned: Array.from(document.getElementById('retention').tBodies[0].rows, (row) =>
          Array.from(row.querySelectorAll('[data-returned]'), (cell) => Number(cell.dataset.returned))),
      },
    }
  })
}

// How many distinct colours the chart's canvas holds: a blank chart has one or two.
async function chartColours(page) {
  return page.evaluate(() => {
    const canvas = document.querySelector('#chart canvas')
    if (!canvas) return 0
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height)
    const colours = new Set()
    for (let i = 0; i < data.length; i += 4) colours.add(`${data[i]},${data[i + 1]},${data[i + 2]},${data[i + 3]}`)
    return colours.size
  })
}

// The page's script has run and offers the sign-in form.
async function openSignedOut(page) {
  await page.goto(dashboard)
  await page.waitForFunction(() => document.body.dataset.state === 'signed-out', null, { timeout: TIMEOUT })
}

async function messageText(page) {
  await page.waitForSelector('#message:not([hidden])', { timeout: TIMEOUT })
  return (await page.textContent('#message')).trim()
}

// A wrong key typed in and sent with Enter: a clear message, still on the sign-in form.
async function wrongKey(browser) {
  const page = watch(await browser.newPage(), 'wrong')
  await openSignedOut(page)
  await page.focus('#credential')
  await page.keyboard.type('vt_wrong_key_0000')
  await page.keyboard.press('Enter')
  const message = await messageText(page)
  const signInShown = await page.isVisible('#sign-in')
  // A real key without the read scope: told so, and back on the form.
  await page.focus('#credential')
  await page.keyboard.type(ingestKey)
  await page.keyboard.press('Enter')
  await page.waitForFunction(() => /may not read/.test(document.getElementById('message').textContent), null, { timeout: TIMEOUT })
  const ingestOnly = { message: (await page.textContent('#message')).trim(), signInShown: await page.isVisible('#sign-in') }
  await page.close()
  return { message, signInShown, ingestOnly }
}

// The read key typed in (keyboard only), the board read, the range changed.
async function readKeySession(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } })
  const page = watch(await context.newPage(), 'read')
  const summaries = []
  page.on('request', (request) => {
    if (request.url().includes('/api/v1/reports/summary')) summaries.push(request.url())
  })
  await openSignedOut(page)
  await page.focus('#credential')
  await page.keyboard.type(readKey)
  await page.keyboard.press('Enter')
  await waitLoads(page, 1)
  const board = await readBoard(page)
  const colours = await chartColours(page)
  await page.locator('#chart').screenshot({ path: path.join(outDir, 'chart.png') })
  await page.locator('#panels').screenshot({ path: path.join(outDir, 'panels.png') })
  const peopleSeen = await peopleViews(page)
  const storage = await page.evaluate(() => Object.values(sessionStorage))
  const cookies = await context.cookies()
  const filters = await filterAndBots(page)
  const requestsBefore = summaries.length
  await nextLoad(page, () => page.selectOption('#range', '7d'))
  const afterRange = await readBoard(page)
  const rangeRequest = summaries.slice(requestsBefore).pop()
  const empty = await emptyRange(page)
  const panelError = await failedPanel(page)
  const rateLimited = await rateLimitedRefresh(page)
  await context.close()
  return {
    board,
    people: peopleSeen,
    chartColours: colours,
    keptInSessionStorage: storage.includes(readKey),
    cookies: cookies.length,
    range: {
      summaryRequests: summaries.length - requestsBefore,
      request: rangeRequest ? Object.fromEntries(new URL(rangeRequest).searchParams) : null,
      from: afterRange.from,
      to: afterRange.to,
    },
    empty,
    panelError,
    rateLimited,
    filters,
  }
}

// One panel's question refused (400): the panel shows the problem's detail, the rest loads.
// Another answers more values than it lists: an "other" row.
async function failedPanel(page) {
  const asks = (dimension) => (url) => url.pathname.endsWith('/reports/breakdown') && url.searchParams.get('dimension') === dimension
  await page.route(asks('os'), (route) => route.fulfill({
    status: 400,
    headers: { 'content-type': 'application/problem+json' },
    body: JSON.stringify({ status: 400, title: 'Bad Request', detail: 'dimension: the os rollup is resting' }),
  }))
  await page.route(asks('browser'), (route) => route.fulfill({
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      dimension: 'browser', items: [{ value: 'Firefox', events: 6, uniqueUsers: 2 }],
      otherEvents: 4, otherValues: 2, totalEvents: 10, botEvents: 0, dataAsOf: new Date().toISOString(),
    }),
  }))
  await nextLoad(page, () => page.click('#refresh'))
  const board = await readBoard(page)
  await page.unroute(asks('os'))
  await page.unroute(asks('browser'))
  return {
    systems: board.panels.systems,
    browsers: board.panels.browsers,
    messageShown: await page.isVisible('#message'),
    pagesState: board.panels.pages.state,
  }
}

// A custom range before any event: the page says there is nothing yet.
async function emptyRange(page) {
  await nextLoad(page, () => page.selectOption('#range', 'custom'))
  // Both ends at once, as one change: no refetch for a half-edited range.
  await page.evaluate(() => {
    document.getElementById('from').value = '2020-01-01T00:00'
    document.getElementById('to').value = '2020-01-02T00:00'
  })
  await page.dispatchEvent('#to', 'change')
  await page.waitForFunction(() => document.getElementById('board').dataset.from.startsWith('2020-01-01'), null, { timeout: TIMEOUT })
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: TIMEOUT })
  const board = await readBoard(page)
  return { from: board.from, to: board.to, shown: board.emptyShown, text: (await page.textContent('#empty')).trim(), totalEvents: board.totalEvents }
}

// The service answers 429 (Retry-After: 7): the page says so and when it tries again.
async function rateLimitedRefresh(page) {
  await page.route('**/api/v1/reports/summary*', (route) => route.fulfill({
    status: 429,
    headers: { 'retry-after': '7', 'content-type': 'application/problem+json' },
    body: JSON.stringify({ status: 429, title: 'Too Many Requests', detail: 'over the rate limit' }),
  }))
  await page.focus('#refresh')
  await page.keyboard.press('Enter')
  const message = await messageText(page)
  await page.unroute('**/api/v1/reports/summary*')
  return { message }
}

// Signed in through the URL fragment at phone width: nothing wider than the screen.
async function phoneSession(browser) {
  const context = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true })
  const page = watch(await context.newPage(), 'phone')
  await page.goto(`${dashboard}#key=${encodeURIComponent(readKey)}`)
  await waitLoads(page, 1)
  const layout = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    hashLeft: location.hash,
  }))
  const board = await readBoard(page)
  await page.screenshot({ path: path.join(outDir, 'phone.png'), fullPage: true })
  await context.close()
  return { ...layout, totalEvents: board.totalEvents }
}

// The admin token gets a partner picker; the README's screenshot is taken here.
async function adminSession(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } })
  const page = watch(await context.newPage(), 'admin')
  await page.goto(`${dashboard}#key=${encodeURIComponent(adminToken)}`)
  await waitLoads(page, 1)
  const partners = await page.$$eval('#partner option', (options) => options.map((option) => option.value))
  const pickerShown = await page.isVisible('#partner')
  const board = await readBoard(page)
  // The screenshot shows no credential: the fragment is gone, the form hidden.
  await page.screenshot({ path: path.join(outDir, 'dashboard.png'), fullPage: true, clip: { x: 0, y: 0, width: 1100, height: 1560 } })
  await context.close()
  return { partners, pickerShown, totalEvents: board.totalEvents, topSubsystems: board.topSubsystems, who: board.who }
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true })
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  })
  try {
    const result = {
      wrongKey: await wrongKey(browser),
      read: await readKeySession(browser),
      phone: await phoneSession(browser),
      admin: await adminSession(browser),
    }
    result.problems = problems
    console.error(log.join('\n'))
    console.log(JSON.stringify(result))
  } catch (error) {
    console.error(log.join('\n'))
    throw error
  } finally {
    await browser.close()
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
