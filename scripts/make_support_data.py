#!/usr/bin/env python3
"""Generate rlhfkit's bundled preference dataset `bundled:support`.

Writes src/rlhfkit/data/bundled/support.jsonl: customer-support preference pairs in the explicit form
{"id", "prompt", "chosen", "rejected", "source", "situation"}. Every text was written for rlhfkit and is
composed from the sentence pools below with a seeded random.Random, so running

    python scripts/make_support_data.py            # (re)write the file, then print checks
    python scripts/make_support_data.py --check    # only verify the file is up to date and sound

reproduces the file byte for byte. Standard library only.

A chosen response = an empathetic (or, for plain requests, friendly) opener + a concrete action specific
to the customer's situation with a time frame, sometimes a next step for the customer and a short closing.
A rejected response is polite or curt but vague: no action, no time, deflection, asking again for details
already given, or a long generic paragraph (about LONG_REJECTED_SHARE of them, so that "pick the longer
response" is right only about 70% of the time).
"""
from __future__ import annotations

import argparse
import json
import random
import string
import sys
from collections import Counter
from pathlib import Path

SEED = 1234
SOURCE = f"rlhfkit-support-v1 (template-generated, seed {SEED})"
OUT = Path(__file__).resolve().parents[1] / "src" / "rlhfkit" / "data" / "bundled" / "support.jsonl"

# Share of rejected responses that are long-winded but vague (usually longer than the chosen one).
LONG_REJECTED_SHARE = 0.27
# Share of chosen responses that are short and crisp (opener + action only).
CRISP_CHOSEN_SHARE = 0.10
# Share of situations that get 4 pairs (the others get 3).
FOUR_PAIR_SHARE = 0.55

MAX_PROMPT_CHARS = 200
MAX_RESPONSE_CHARS = 400

# ------------------------------------------------------------------------------------------------
# domains: label, departments to deflect to, what the customer's reference is called, domain flavour
# for the long vague answers, domain-specific curt brush-offs
# ------------------------------------------------------------------------------------------------
DOMAINS = {
    "shop": dict(
        label="E-commerce orders (wrong, missing, damaged, late or lost items, returns, refunds, exchanges)",
        depts=["our warehouse team", "the courier", "the returns department"],
        long=["We work with a number of delivery partners and occasionally things may not go exactly to plan.",
              "Stock levels and delivery times can change quickly, especially during busy periods."],
        curt=["Please wait for the courier.", "Check the tracking page.", "Returns are explained on our website."]),
    "billing": dict(
        label="Billing and subscriptions (double or unknown charges, invoices, plan changes, failed payments, "
              "promo codes)",
        depts=["the billing department", "our accounts team", "your bank"],
        long=["Charges are processed in line with the terms of your agreement and the billing cycle on your account.",
              "Billing questions can take a little time to review because several systems are involved."],
        curt=["Check your billing page.", "Ask your bank.", "Billing is automatic."]),
    "account": dict(
        label="Accounts and security (password reset, locked accounts, lost 2FA phone, email change, data requests)",
        depts=["the security team", "our technical team", "the privacy office"],
        long=["For security reasons there are certain limitations on what can be changed on an account.",
              "Protecting your account is very important to us, and our processes are designed with that in mind."],
        curt=["Use the forgot password link.", "Try logging in again.", "Check your spam folder."]),
    "telecom": dict(
        label="Telecom and internet (outages, slow speed, routers, SIM cards, roaming, number transfers)",
        depts=["the network team", "our engineers", "the technical support line"],
        long=["Network performance can be affected by many things, including the time of day, the equipment in "
              "your home and the number of people online.",
              "Our engineers monitor the network around the clock."],
        curt=["Have you tried restarting the router?", "Check the service status page.", "Turn it off and on again."]),
    "travel": dict(
        label="Travel (flight delays and cancellations, luggage, booking changes, hotels, car rental, trains)",
        depts=["the airline", "the hotel", "our partner team", "the airport"],
        long=["Travel disruption can be caused by weather, air traffic control and many other factors that are "
              "outside of our control.",
              "We work with many travel partners, and each of them has its own policies."],
        curt=["Delays are outside our control.", "Ask at the airport.", "Check the booking conditions."]),
    "saas": dict(
        label="Software and SaaS (bugs, crashes, data export, API keys, sync, logins, feature questions)",
        depts=["engineering", "the product team", "your workspace admin"],
        long=["Our engineers are constantly working to improve the stability and performance of the product.",
              "Software issues can depend on your device, browser, settings and network."],
        curt=["Have you tried clearing your cache?", "Try reinstalling the app.", "See the documentation."]),
    "bank": dict(
        label="Banking (lost or stolen cards, fraud, blocked payments, delayed transfers, fees, statements)",
        depts=["the fraud department", "your branch", "the payments team"],
        long=["The security of your account is extremely important to us, and we follow strict procedures in all "
              "cases.",
              "Payments pass through several banks and networks, each with its own checks."],
        curt=["Please visit your branch.", "Call the number on your card.", "Check the app."]),
    "food": dict(
        label="Food delivery (late, missing, wrong, cold or spilled orders, allergies, undelivered orders)",
        depts=["the restaurant", "the delivery partner", "our driver team"],
        long=["Our restaurant and delivery partners are independent businesses and work hard to deliver every "
              "order as described.",
              "Delivery times can vary with traffic, weather and how busy the restaurant is."],
        curt=["Please take it up with the restaurant.", "Rate your driver in the app.", "Order again."]),
    "utility": dict(
        label="Utilities (power cuts, water supply, gas emergencies, bills, meter readings, payment plans)",
        depts=["field services", "the network operator", "our metering team"],
        long=["Energy and water networks are complex systems and occasionally issues can arise.",
              "Bills are calculated from the information available to us at the time."],
        curt=["Check the outage map.", "Submit a meter reading online.", "Pay what the bill says."]),
    "insurance": dict(
        label="Insurance claims (claim status, accidents, declined claims, documents, home damage, renewals)",
        depts=["the claims department", "underwriting", "your broker"],
        long=["Every claim is assessed carefully according to the terms and conditions of your policy.",
              "Claims can involve several parties, so timescales vary from case to case."],
        curt=["Read your policy.", "Claims take time.", "Fill in the claim form."]),
    "appt": dict(
        label="Appointments (rescheduling, cancelling, long waits, missing confirmations, double bookings, results)",
        depts=["the front desk", "the clinic", "the booking office"],
        long=["Our schedules are very busy and we try to accommodate everyone as best we can.",
              "Appointment availability changes throughout the day."],
        curt=["Call the front desk.", "Book online.", "Please wait to be called."]),
    "warranty": dict(
        label="Warranty repairs (laptops, phones, appliances, headphones, faulty replacements, rejected claims)",
        depts=["the manufacturer", "the repair centre", "the service partner"],
        long=["Warranty cover is subject to the terms and conditions provided with your product.",
              "Repairs depend on the availability of parts from our suppliers."],
        curt=["Check your warranty card.", "Contact the manufacturer.", "Repairs take time."]),
    "membership": dict(
        label="Memberships (cancelling or freezing a gym membership)",
        depts=["your home club", "the membership office", "head office"],
        long=["Membership terms are set out in the agreement you signed when you joined.",
              "Each club manages its own memberships, so processes can differ."],
        curt=["Ask at reception.", "See your contract.", "Fill in the form at the club."]),
}

# What the customer's own reference is called, by the slot that carries it in the prompt.
ID_NAMES = [("order", "order number"), ("ref", "booking reference"), ("flight", "flight number"),
            ("claim", "claim number"), ("last4", "card number")]

# Slots a prompt supplies (a response may only use one if every prompt of its situation has it) and
# slots the agent makes up (new dates, case numbers, time windows).
CUSTOMER_SLOTS = {"order", "product", "clothing", "gadget", "amount", "ref", "flight", "dish", "restaurant",
                  "last4", "city", "pday", "date", "appliance", "plan", "lowplan", "promo", "claim", "pmonth"}
AGENT_SLOTS = {"day", "case", "window", "mins", "newtime", "name"}

FIRST_NAMES = ["Maya", "Tom", "Priya", "Lukas", "Amara", "Jonas", "Sofia", "Ravi", "Elena", "Marcus", "Aisha",
               "Ben", "Chloe", "Diego", "Hana", "Ivan", "Julia", "Kofi", "Lena", "Mateo", "Nina", "Omar",
               "Paula", "Sam", "Tariq", "Yuki", "Zoe", "Felix", "Grace", "Leo"]
PRODUCTS = ["blue hoodie", "coffee grinder", "yoga mat", "desk lamp", "pair of running shoes", "backpack",
            "blender", "phone case", "kettle", "wool scarf", "standing desk", "cast iron pan", "rain jacket",
            "board game", "set of bed sheets", "wall clock"]
CLOTHING = ["blue hoodie", "pair of running shoes", "rain jacket", "pair of jeans", "wool jumper",
            "pair of boots", "linen shirt", "winter coat"]
GADGETS = ["bluetooth speaker", "tablet", "smartwatch", "coffee machine", "hair dryer", "robot vacuum",
           "fitness tracker", "webcam", "games controller", "monitor"]
APPLIANCES = ["washing machine", "dishwasher", "fridge", "tumble dryer", "cooker", "freezer"]
DISHES = ["pad thai", "margherita pizza", "chicken burrito", "sushi platter", "veggie burger", "lamb curry",
          "falafel wrap", "ramen"]
RESTAURANTS = ["Golden Wok", "Luigi's", "Taco Loco", "Green Bowl", "Sakura Sushi", "The Burger Yard",
               "Spice Route", "Noodle Bar 88"]
CITIES = ["Lisbon", "Toronto", "Berlin", "Madrid", "Chicago", "Dublin", "Rome", "Vienna", "Athens", "Oslo"]
PLANS = ["Pro", "Team", "Plus", "Premium", "Business"]
LOW_PLANS = ["Basic", "Starter", "Lite", "Essentials"]
PROMOS = ["SAVE20", "WELCOME15", "SPRING10", "FRIEND25", "AUTUMN5", "HELLO30"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
WINDOWS = ["between 8am and 12pm", "between 9am and 1pm", "between 12pm and 4pm", "between 1pm and 5pm",
           "between 2pm and 6pm"]
TIMES = ["8:45am", "9:15am", "10:30am", "11:00am", "1:30pm", "2:45pm", "3:15pm", "4:00pm"]


def sample_slots(rng: random.Random) -> dict:
    pday, day = rng.sample(WEEKDAYS, 2)
    return {
        "name": rng.choice(FIRST_NAMES),
        "order": f"#{rng.randint(10000, 99999)}",
        "product": rng.choice(PRODUCTS),
        "clothing": rng.choice(CLOTHING),
        "gadget": rng.choice(GADGETS),
        "appliance": rng.choice(APPLIANCES),
        "amount": f"${rng.randint(9, 240)}.{rng.choice(['00', '49', '95', '99'])}",
        "ref": "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6)),
        "flight": f"{rng.choice(['RK', 'NV', 'TQ', 'LX', 'BW'])} {rng.randint(100, 2999)}",
        "dish": rng.choice(DISHES),
        "restaurant": rng.choice(RESTAURANTS),
        "last4": f"{rng.randint(0, 9999):04d}",
        "city": rng.choice(CITIES),
        "plan": rng.choice(PLANS),
        "lowplan": rng.choice(LOW_PLANS),
        "promo": rng.choice(PROMOS),
        "claim": f"CL-{rng.randint(100000, 999999)}",
        "pmonth": rng.choice(MONTHS),
        "pday": pday,
        "day": day,
        "date": f"{rng.choice(MONTHS)} {rng.randint(2, 28)}",
        "case": f"{rng.choice(['SR', 'CS', 'REF'])}-{rng.randint(10000, 99999)}",
        "window": rng.choice(WINDOWS),
        "mins": str(rng.choice([15, 20, 25, 30, 35])),
        "newtime": rng.choice(TIMES),
    }


# ------------------------------------------------------------------------------------------------
# prompt wrappers (tone) and chosen-response pools
# ------------------------------------------------------------------------------------------------
# (tone, template); "{b}" is the situation's phrasing. Angry wrappers only go on complaints.
WRAPPERS = [
    ("plain", "{b}"), ("plain", "{b}"), ("plain", "{b}"), ("plain", "{b}"),
    ("polite", "Hi, I hope you can help. {b}"),
    ("polite", "{b} Thanks in advance."),
    ("polite", "Hello! {b} Thank you."),
    ("polite", "Good morning. {b}"),
    ("angry", "{b} This is unacceptable."),
    ("angry", "Seriously? {b}"),
    ("angry", "{b} I'm really fed up."),
    ("angry", "{b} Not happy at all."),
    ("confused", "Sorry, not sure if this is the right place. {b}"),
    ("confused", "{b} I'm a bit lost on what to do."),
    ("confused", "Quick question, I'm confused. {b}"),
    ("named", "Hi, this is {name}. {b}"),
    ("named", "{name} here. {b}"),
    ("named", "Hello, my name is {name}. {b}"),
]

OPENERS = {
    "problem": [
        "I'm so sorry about this!",
        "I'm really sorry for the trouble.",
        "Thank you for flagging this, and I apologise for the hassle.",
        "I completely understand how frustrating this is, and I'm sorry.",
        "Sorry about that - let me fix it right away.",
        "I'm sorry this happened. Let me sort it out now.",
        "That's not the experience we want for you, and I apologise.",
        "Thanks for your patience, and sorry for the inconvenience.",
        "I apologise - that shouldn't have happened.",
        "Oh no, I'm sorry to hear that!",
        "I'm sorry you've had to deal with this.",
        "Apologies for the trouble - I'm on it.",
    ],
    "request": [
        "Happy to help with that!",
        "Of course - thanks for asking.",
        "Sure, I can take care of that for you.",
        "No problem at all.",
        "Thanks for getting in touch!",
        "Glad to help.",
        "Absolutely, let me sort that out.",
        "Thanks for reaching out - that's easy to arrange.",
    ],
    "urgent": [
        "Thank you for telling us straight away.",
        "I'm sorry you're dealing with this - let's get it sorted right now.",
        "Thanks for acting quickly; I'm on it.",
        "I'm really sorry this happened. Here's what I've done already.",
        "That sounds stressful, and I'm sorry. I've acted on it immediately.",
    ],
}
ANGRY_OPENERS = [
    "You have every right to be upset, and I'm sorry.",
    "I hear you, and I apologise - this isn't good enough.",
    "I understand your frustration completely, and I'm sorry we let you down.",
    "You're right to be annoyed, and I apologise.",
]
CONFUSED_OPENERS = {
    "problem": ["You're in the right place, and I'm sorry for the trouble.",
                "No worries, I can help - and sorry about this."],
    "request": ["You're in the right place, and I'm happy to help.",
                "No worries at all, I can help with that."],
    "urgent": ["You're in the right place, and I'm on it now."],
}
NAMED_OPENERS = {
    "problem": ["I'm so sorry, {name}!", "Thanks for reaching out, {name}, and I'm sorry for the trouble.",
                "{name}, I apologise for this.", "Sorry about this, {name}."],
    "request": ["Happy to help, {name}!", "Of course, {name}.", "Thanks for getting in touch, {name}!"],
    "urgent": ["Thank you for telling us straight away, {name}.", "I'm sorry, {name} - I've acted on it already."],
}
SHORT_OPENERS = {
    "problem": ["Sorry about that!", "So sorry!", "Apologies!", "My apologies.", "Sorry for the trouble."],
    "request": ["Sure!", "Happy to help!", "Of course!", "No problem."],
    "urgent": ["Thanks for telling us.", "On it now.", "Sorry to hear that."],
}
CLOSINGS = [
    "I'll keep an eye on this until it's fully resolved.",
    "Reply here if anything else comes up and I'll pick it up personally.",
    "Thanks for bearing with us.",
    "I'll check back with you once it's done.",
    "Let me know if there's anything else I can do.",
    "Thanks again for your patience.",
]
NAMED_CLOSINGS = ["Thanks for your patience, {name}.", "Have a good day, {name}."]

# ------------------------------------------------------------------------------------------------
# rejected-response pools: polite or curt, never a concrete action with a time frame
# ------------------------------------------------------------------------------------------------
CURT = [
    "Contact support.", "Please check our FAQ.", "We'll look into it.", "Noted.", "Please try again later.",
    "See the help centre.", "We're aware of the issue.", "Please be patient.",
    "Please refer to our terms and conditions.", "Thanks for your message.", "Someone will be in touch.",
    "That's just how it works.", "Nothing we can do right now.", "Please call our hotline.", "Check your email.",
    "It should sort itself out.", "We can't help with that here.", "Read the FAQ first.", "Please submit a ticket.",
    "Okay.", "This is being handled.", "Please wait for an update.", "Policy is policy.",
]
CURT_TOPIC = [
    "We'll look into {topic}.", "Noted regarding {topic}.", "Please check the FAQ about {topic}.",
    "Contact support about {topic}.", "We can't discuss {topic} here.", "Nothing to add about {topic}.",
]
POLITE = [
    "Sorry for the inconvenience, these things happen.",
    "Thank you for reaching out. We appreciate your patience while we look into this.",
    "We apologise for any inconvenience caused. Your feedback is important to us.",
    "Sorry to hear that! Unfortunately issues like this can happen from time to time.",
    "Thanks for getting in touch. Someone may follow up with you at some point.",
    "We understand your concern and will pass it on to the relevant team.",
    "I'm sorry you're having trouble. Please have a look at the help section of our website.",
    "Thanks for letting us know. We'll see what we can do.",
    "We're sorry to hear about your experience. Please bear with us.",
    "Thank you for your patience. Our team is doing its best.",
    "Apologies for any trouble. Hopefully it resolves soon.",
    "I understand. Unfortunately I don't have any more information at the moment.",
    "Thanks for your message! We value your feedback and will take it into account.",
    "I'm sorry, but there isn't much I can do from here. Please keep an eye on your account.",
]
POLITE_TOPIC = [
    "Sorry to hear about {topic}. We'll look into it and get back to you.",
    "Thanks for letting us know about {topic}. These things can take time.",
    "We're sorry about {topic}. Please keep an eye on your inbox for updates.",
    "Regarding {topic}, please allow some time for this to be reviewed.",
    "Thanks for your message about {topic}. We may be in touch if we need anything else.",
    "I can see you're asking about {topic}. Unfortunately there's not much I can do from here.",
    "We'll review {topic} and decide on the next steps in due course.",
    "A member of the team may be able to help with {topic} at some point.",
    "Requests regarding {topic} are handled on a case-by-case basis. Please wait to hear back.",
    "Once we have reviewed everything about {topic}, we may contact you.",
    "I've made a note about {topic} on your file. Someone might follow up.",
]
DEFLECT = [
    "That's handled by {dept}, so you'll need to contact them directly.",
    "Unfortunately I can't help with that. Please reach out to {dept}.",
    "I've passed your message on to {dept}. They may get back to you.",
    "This isn't something our team deals with. Try {dept} instead.",
    "You'd need to speak to {dept} about that, I'm afraid.",
    "Please raise this with {dept}; they're the ones who handle {topic}.",
    "I'm not able to access that. {Dept} should be able to help you, so please get in touch with them.",
]
ASK_ID = [
    "Could you send us your {idname}? We can't look into anything without it.",
    "Please provide your {idname} and a full description of the problem.",
    "What's your {idname}? We'll need that before we can help.",
    "Before we go any further, please confirm your {idname}.",
]
ASK_GENERIC = [
    "Can you explain what happened in more detail?",
    "Please fill in the contact form on our website with all the details of your issue.",
    "Could you confirm which account this is about and describe the problem again?",
    "We need more information before we can help. Please describe the issue fully.",
    "Could you send a screenshot? We'll need it before going any further.",
    "Can you tell us a bit more about {topic}?",
]
LONG_START = [
    "Thank you for contacting us and for taking the time to share your experience.",
    "Thank you for your message, and we're sorry to hear that you've been having difficulties.",
    "We appreciate you reaching out to our customer care team about {topic}.",
    "Thanks so much for getting in touch with us.",
    "We understand that issues like this can be frustrating, and we thank you for raising it.",
]
LONG_MIDDLE = [
    "We truly value you as a customer and understand how important this is to you.",
    "Please be assured that customer satisfaction is our top priority.",
    "Our teams work hard every day to provide the best possible service, but occasionally things do not go "
    "as planned.",
    "There are many factors involved when it comes to {topic}, and each case is different.",
    "We have made a note of your feedback regarding {topic}.",
    "Your comments will be shared with the relevant teams so that they can consider them as part of our "
    "ongoing improvement efforts.",
    "In the meantime, you may find helpful information in the support section of our website, which covers a "
    "wide range of common questions.",
    "We appreciate your patience and understanding while this is reviewed.",
    "Rest assured that we take matters like this very seriously.",
    "Depending on the circumstances, there may be a number of options available, which will be considered in "
    "due course.",
    "Please note that response times may vary during busy periods.",
    "We hope to resolve matters to your satisfaction as soon as we are able to.",
    "Every situation is looked at individually, so it is difficult to say more at this stage.",
    "We are always looking for ways to improve, and feedback like yours helps us do that.",
]
LONG_END = [
    "Should you have any further questions, please do not hesitate to get in touch with us through any of our "
    "usual channels.",
    "We apologise for any inconvenience this may have caused and thank you for your continued loyalty.",
    "Thank you once again for bringing this to our attention.",
    "Thank you for your understanding.",
    "We hope this information is helpful.",
]

SITUATIONS: list[dict] = []


def S(key: str, domain: str, kind: str, topic: str, prompts: list, acts: list, nexts: list) -> None:
    """Register a customer situation: its prompts, concrete actions (with a time frame) and next steps."""
    SITUATIONS.append(dict(key=key, domain=domain, kind=kind, topic=topic, prompts=prompts, acts=acts,
                           nexts=nexts))


# ================================================================================================
# situations
# ================================================================================================
# ---------------------------------------------------------------- e-commerce orders
S("order-wrong-item", "shop", "problem", "the wrong item in your order", [
    "My order {order} arrived with the wrong item. I ordered a {product} and got something completely different.",
    "You sent me the wrong thing in order {order}. I paid for a {product}. What should I do?",
    "Wrong item in order {order}. Where is my {product}?",
    "I opened my parcel ({order}) and it's not the {product} I ordered. What now?",
], [
    "I've shipped the correct {product} by express delivery today at no charge, so it should arrive by {day}.",
    "I've placed a free replacement order for the {product}; it leaves our warehouse within 24 hours and the "
    "tracking link will be emailed to you tonight.",
    "I've sent the right {product} out on today's priority dispatch, and I've refunded your original shipping "
    "cost as well.",
], [
    "There's no need to return the wrong item first; a prepaid return label is already in your inbox.",
    "Just hand the wrong item to the courier when they deliver the new one.",
])
S("order-missing-item", "shop", "problem", "the missing item", [
    "My package for order {order} came today but the {product} was missing from the box.",
    "Order {order} only had half my stuff in it. The {product} isn't there.",
    "I received order {order} but there's no {product} inside. I was charged for it!",
], [
    "I've sent the missing {product} out as a separate parcel today with tracked shipping, so you'll have it by {day}.",
    "I've dispatched the {product} on its own this afternoon; you'll get a tracking number by email within the hour.",
    "The packing record shows the {product} was left behind at our warehouse, so it's been shipped by express "
    "today and will arrive by {day}.",
], [
    "Nothing else is needed from you - just keep an eye out for the tracking email.",
    "If you'd prefer a refund instead, reply 'refund' and I'll process it the same day.",
])
S("order-damaged-item", "shop", "problem", "the damaged item", [
    "The {product} from order {order} arrived smashed. The box was crushed too.",
    "My {product} came damaged. Really disappointed, it was a gift.",
    "Order {order}: {product} broken on arrival. I want a replacement.",
], [
    "I've sent a brand-new {product} today by express shipping, so it should be with you by {day}.",
    "I've issued a replacement {product} that ships within 24 hours, packed with extra protection this time.",
    "I've processed a full refund for the {product} to your original payment method; it will show in 3-5 "
    "business days.",
], [
    "You don't need to send the broken one back - please just recycle it.",
    "If you can, reply with a quick photo of the damage for our courier report, but nothing is waiting on it.",
])
S("order-late-delivery", "shop", "problem", "the delay with your delivery", [
    "My order {order} was supposed to arrive on {pday} and it still hasn't come.",
    "Where is order {order}?? It's been over a week and tracking hasn't moved.",
    "Order {order} is late. I needed it for this weekend.",
], [
    "I've contacted the courier: your parcel for {order} was held at their depot and is now on a van for "
    "delivery tomorrow before 6pm.",
    "I've refunded your shipping fee and upgraded order {order} to next-day delivery, so it will arrive by {day}.",
    "Order {order} was mis-routed, so I've sent a replacement by express today; it should reach you within 2 "
    "business days.",
], [
    "If the original parcel turns up as well, just refuse it at the door and it will come back to us.",
    "You'll get an updated tracking link by email within the next hour.",
])
S("order-lost-package", "shop", "problem", "the missing parcel", [
    "Tracking says order {order} was delivered on {pday}, but nothing arrived. I checked with the neighbours.",
    "My parcel shows as delivered but I never got it. Order {order}.",
    "Order {order} says 'delivered'. It wasn't. I've looked everywhere.",
], [
    "I've opened a lost-parcel claim with the courier and, rather than make you wait, I've shipped a "
    "replacement today that will arrive by {day}.",
    "I've issued a full refund for order {order}; it will appear on your statement within 3-5 business days.",
    "I've reshipped order {order} with signature on delivery at no cost, and it goes out this afternoon.",
], [
    "Your claim reference is {case}, in case you need it.",
    "If the original parcel does turn up, you can send it back with the free label I've emailed you.",
])
S("order-return-request", "shop", "request", "your return", [
    "I'd like to return the {product} from order {order}. It isn't what I needed.",
    "How do I return something? I bought a {product} last week and changed my mind.",
    "Want to send back the {product}. Order {order}.",
], [
    "I've emailed you a prepaid return label for the {product}; once it's scanned at drop-off, your refund is "
    "issued within 2 business days.",
    "I've set up your return and sent a QR code to your email - show it at any parcel shop, no printing needed.",
    "Your return for the {product} is approved and a courier will collect it from your address on {day} {window}.",
], [
    "Please pack it in any box, with the tags still attached if you can.",
    "You have 30 days from delivery to send it, so there's no rush.",
])
S("order-refund-not-received", "shop", "problem", "your refund", [
    "I returned my order two weeks ago and still haven't got my refund of {amount}.",
    "Where's my refund of {amount}? I sent order {order} back ages ago.",
    "Still waiting on {amount} back for a return. This is taking forever.",
], [
    "Your return arrived but the refund was never released; I've processed the {amount} now and it will reach "
    "your card within 3-5 business days.",
    "I've pushed your {amount} refund through manually today, and you'll receive a confirmation email within "
    "the hour.",
    "The refund of {amount} bounced off an expired card, so I've sent it by bank transfer instead; it should "
    "land by {day}.",
], [
    "If it hasn't appeared by then, reply here and I'll chase the bank directly.",
    "Your reference for this refund is {case}.",
])
S("order-exchange-size", "shop", "problem", "your exchange", [
    "The {clothing} I ordered is too small. Can I swap it for a bigger size? Order {order}.",
    "I need to exchange the {clothing} for a different size, please.",
    "Size is wrong on the {clothing}. Can I get the next size up without paying again?",
], [
    "I've reserved the next size up and it ships today for free, arriving by {day}.",
    "I've set up an exchange: the new size ships as soon as the courier scans your return, usually within 1 "
    "business day.",
    "I've sent the larger {clothing} out this afternoon with free express shipping, so you don't have to wait "
    "for the return first.",
], [
    "Just use the prepaid label in your email to send the original back within 30 days.",
    "Please keep the tags on the original when you send it back.",
])
S("order-cancel-before-ship", "shop", "request", "your cancellation", [
    "I placed order {order} an hour ago by mistake. Can I cancel it?",
    "Please cancel order {order}, I ordered the wrong colour.",
    "Cancel {order} before it ships please!",
], [
    "I've cancelled order {order} before it was packed, and the full amount will go back to your card within "
    "3-5 business days.",
    "Order {order} is cancelled - you'll get a confirmation email in the next few minutes, and the payment hold "
    "drops off within 48 hours.",
    "I caught order {order} just in time and it's now cancelled; your refund was issued today.",
], [
    "If you'd still like a different version, you can reorder now and it will ship today.",
])
S("order-change-address", "shop", "request", "your delivery address", [
    "I just realised order {order} is going to my old address. Can you change it?",
    "I need to update the shipping address on {order}, I've moved.",
    "Oops, wrong address on my order {order}. Can you help?",
], [
    "Order {order} hasn't left the warehouse yet, so I've put it on hold; reply with the new address and I'll "
    "update it and release it the same day.",
    "I've paused order {order} before dispatch. As soon as you send the new address, I'll change the label and "
    "it will still ship today.",
    "I've flagged order {order} so it won't ship to the old address. Send me the new one and it will go out "
    "within 24 hours.",
], [
    "You can also update your saved address under Account > Addresses for future orders.",
])
S("order-tracking-stuck", "shop", "problem", "the tracking on your order", [
    "The tracking for order {order} hasn't updated in 5 days. Is it lost?",
    "Tracking stuck on 'label created' since {pday}. Order {order}.",
    "Is my order {order} even coming? The tracking page says nothing.",
], [
    "I've checked with the courier: order {order} is at their regional hub and scheduled for delivery on {day}; "
    "the scans just weren't uploaded.",
    "The original label for {order} was never scanned, so I've re-shipped it with a new tracking number today "
    "and emailed it to you.",
    "I've opened an investigation with the courier, reference {case}, and if there's no movement by {day} I'll "
    "send a replacement automatically.",
], [
    "You'll get a text as soon as the parcel is out for delivery.",
])
S("order-defective-item", "shop", "problem", "the faulty product", [
    "The {gadget} I bought won't turn on at all. Order {order}.",
    "My new {gadget} stopped working after 2 days. Pretty annoyed.",
    "The {gadget} is dead out of the box. What can you do?",
], [
    "I've arranged a replacement {gadget} that ships today by express, so you'll have it by {day}.",
    "I've approved a full refund for the {gadget}; it will go back to your original payment method within 3-5 "
    "business days.",
    "I've sent a new {gadget} out this afternoon and included a prepaid label for the faulty one.",
], [
    "Please send the faulty one back within 30 days using the label in your email.",
    "If you'd prefer a refund instead of a replacement, just reply and I'll switch it today.",
])
S("order-charged-not-shipped", "shop", "problem", "your order status", [
    "I was charged {amount} for order {order} a week ago but it still says 'processing'.",
    "Money has left my account ({amount}) but I've had no shipping email for {order}.",
    "Paid {amount}, nothing shipped. Order {order}. Explain?",
], [
    "Order {order} got stuck in a payment check; I've released it and it ships today, arriving by {day}.",
    "I've moved order {order} to the front of the packing queue; it leaves the warehouse within 24 hours and "
    "you'll get tracking by email.",
    "An item in order {order} went out of stock after you paid, so I've refunded the {amount} in full today - "
    "it will show in 3-5 business days.",
], [
    "I've also added free express shipping, so there's nothing more for you to do.",
])
S("order-refund-short", "shop", "problem", "your refund amount", [
    "I got a refund for order {order} but it was {amount} short. Why?",
    "My refund for order {order} is {amount} less than what I paid.",
    "Refund for {order} doesn't add up - I'm missing {amount}.",
], [
    "You're right - the {amount} shipping charge should have been included; I've refunded it now and it will "
    "reach your card in 3-5 business days.",
    "A restocking fee of {amount} was applied by mistake, so I've reversed it today; you'll see a separate "
    "refund on your statement.",
    "I've corrected the refund on order {order} and sent the missing {amount} today.",
], [
    "Your reference is {case} if you need to check with your bank.",
])
S("order-price-drop", "shop", "request", "the price change", [
    "I bought a {product} on {pday} and today it's {amount} cheaper. Can I get the difference back?",
    "The {product} I just ordered went on sale for {amount} less. Do you price match?",
    "Price dropped by {amount} right after I bought the {product}. Kind of annoying.",
], [
    "You're within our 14-day price guarantee, so I've refunded the {amount} difference today; it will show "
    "within 3-5 business days.",
    "I've applied a price adjustment of {amount} to your order, and the refund is on its way to your card now.",
    "I've issued the {amount} difference as a refund to your original payment method, processed today.",
], [
    "Nothing else is needed from you, and the {product} doesn't need to be returned.",
])
S("order-preorder-delay", "shop", "problem", "the preorder delay", [
    "My preorder {order} was meant to ship on {pday}. Now it says delayed with no date.",
    "What's happening with preorder {order}? I was promised it this week.",
    "Preorder {order} delayed again?? Seriously.",
], [
    "The supplier shipment arrived late, but preorder {order} is allocated and will ship on {day}; I've "
    "refunded your shipping as an apology.",
    "I've confirmed with the warehouse that {order} is in the first batch, shipping on {day}, and I've upgraded "
    "it to express.",
    "Preorder {order} ships on {day} and you'll get tracking that day; if you'd rather not wait, I can cancel it "
    "with a full refund today.",
], [
    "I'll email you the moment it's packed.",
])
S("order-out-of-stock", "shop", "problem", "the out-of-stock item", [
    "I got an email saying the {product} from order {order} is out of stock after I paid. Now what?",
    "You took my money for a {product} you don't even have?",
    "Out of stock after purchase? It was a {product}.",
], [
    "I've refunded the {product} in full today, and it will reach your account in 3-5 business days.",
    "A new shipment of the {product} arrives on {day}; I've reserved one for you and it will ship the same day "
    "with free express delivery.",
    "I've swapped your order to the upgraded {product} model at no extra cost, and it ships today.",
], [
    "Just reply if you'd prefer the other option and I'll switch it within the hour.",
])
S("order-duplicate", "shop", "problem", "the duplicate order", [
    "I accidentally ordered the {product} twice - order {order} and the one right after. Can you cancel one?",
    "I think I got charged for two identical orders. I only wanted one {product}.",
    "Double order by mistake, only need one {product}.",
], [
    "I've cancelled the second order for the {product} and refunded it in full; the money will be back within "
    "3-5 business days.",
    "The duplicate order is cancelled before it shipped, and you'll see the refund confirmation email within "
    "the hour.",
    "I've stopped the extra {product} at the warehouse and refunded it today; your original order still ships "
    "as planned.",
], [
    "If both parcels somehow arrive, just refuse the second one at the door.",
])
S("order-return-label-missing", "shop", "problem", "your return label", [
    "I requested a return for order {order} three days ago but never got the label.",
    "Where's my return label? I need to send the {product} back before the deadline.",
    "No return label received. The return window closes soon.",
], [
    "I've resent the prepaid return label to your email just now, and I've extended your return window by 14 days.",
    "I've generated a new label that you can print or show as a QR code at any post office; it's in your inbox now.",
    "Instead of a label, I've booked a free courier pickup for {day} {window}.",
], [
    "Please check your spam folder if it doesn't appear in the next 10 minutes.",
])
S("order-wrong-address-delivery", "shop", "problem", "the misdelivered parcel", [
    "The courier delivered my order {order} to the wrong house. The photo isn't even my door.",
    "My parcel was left at some random address. The delivery photo shows someone else's porch.",
    "Delivered to the wrong address. Order {order}.",
], [
    "I've sent a replacement today by tracked express, so you'll have it by {day}, and I've reported the "
    "driver's error to the courier.",
    "I've asked the courier to retrieve the parcel, and in the meantime a new one is already shipping today.",
    "I've refunded the order in full today - it will show in 3-5 business days - and logged a complaint with "
    "the courier under reference {case}.",
], [
    "If a neighbour brings the first one over, you're welcome to keep it or send it back with the label I've emailed.",
])

# ---------------------------------------------------------------- billing and subscriptions
S("billing-double-charge", "billing", "problem", "the double charge", [
    "I was charged twice for my subscription this month - two payments of {amount}.",
    "Why are there two charges of {amount} on my card from you?",
    "Double charged {amount}. Fix it.",
], [
    "I can see the duplicate payment of {amount}; I've reversed it today and it will be back on your card within "
    "3-5 business days.",
    "I've refunded the second {amount} charge just now, and you'll get a confirmation email within the hour.",
    "The extra {amount} came from a payment retry glitch; I've refunded it and fixed the retry setting so it "
    "won't happen again.",
], [
    "If your bank shows it as pending, it will drop off on its own within 48 hours.",
])
S("billing-unknown-charge", "billing", "problem", "the charge on your statement", [
    "There's a charge of {amount} from your company on my card and I don't know what it is.",
    "What is this {amount} payment? I don't remember buying anything.",
    "Unrecognised {amount} charge from you on {pday}.",
], [
    "That {amount} was the yearly renewal of a storage add-on you haven't used, so I've refunded it in full "
    "today; it arrives in 3-5 business days.",
    "The {amount} charge isn't linked to any account you own, so I've reversed it today and opened a fraud "
    "review, reference {case}.",
    "The {amount} was for a second account created with your card; I've closed it and refunded the charge, "
    "which will show within 5 business days.",
], [
    "You can also check your saved cards under Settings > Billing, and I'm happy to remove any you don't use.",
])
S("billing-invoice-request", "billing", "request", "your invoice", [
    "Could you send me an invoice for my payment in {pmonth}? I need it for my expenses.",
    "I need invoices for the last 3 months for my accountant.",
    "Invoice for {pmonth} please, with our company name on it.",
], [
    "I've emailed the invoice to the address on your account just now; it's also under Billing > Invoices.",
    "I've generated the invoices and sent them to you as PDFs in the last few minutes.",
    "I've added your company name to your billing profile and reissued the invoices, which are in your inbox now.",
], [
    "From now on, invoices will be emailed automatically on each billing date.",
])
S("billing-subscription-cancel", "billing", "request", "your cancellation", [
    "I'd like to cancel my subscription, please. I don't use it any more.",
    "How do I cancel? I can't find the button anywhere.",
    "Cancel my plan. I don't want to be charged again.",
], [
    "I've cancelled your subscription today, so you won't be charged again; you keep access until the end of "
    "this billing period.",
    "Your plan is cancelled and you'll get a confirmation email in the next few minutes - no further payments "
    "will be taken.",
    "I've cancelled it effective immediately and refunded the unused part of this month, which will reach your "
    "card in 3-5 business days.",
], [
    "Your data stays available for 30 days in case you want to export it.",
    "If you ever want to come back, you can restart from the same account.",
])
S("billing-subscription-upgrade", "billing", "request", "your upgrade", [
    "I want to upgrade to the {plan} plan. Will I be charged the full price right away?",
    "How do I move to {plan}? Our team is growing.",
    "Upgrade me to {plan} please.",
], [
    "I've upgraded you to {plan} effective now; you'll only pay the prorated difference today, and the full "
    "price from your next billing date.",
    "You're now on {plan}, and all its features are unlocked immediately; the prorated charge is on today's invoice.",
    "Done - your account is on {plan} as of today, and the new features will appear within 5 minutes.",
], [
    "You can review the new invoice under Billing > Invoices.",
])
S("billing-subscription-downgrade", "billing", "request", "your plan change", [
    "Can I downgrade to the {lowplan} plan? We don't need all the features.",
    "I want a cheaper plan - switch me to {lowplan}.",
    "Please move me down to {lowplan} from next month.",
], [
    "I've scheduled your switch to {lowplan} for your next billing date, so you keep your current features "
    "until then and pay the lower price from that day.",
    "You're set to move to {lowplan} at the end of this billing period, and you'll get an email confirming the "
    "new price today.",
    "I've downgraded you to {lowplan} and credited the difference for the rest of this month to your account today.",
], [
    "Just make sure you're within the {lowplan} user limit before the switch, or extra seats will be paused.",
])
S("billing-failed-payment", "billing", "problem", "the failed payment", [
    "My payment keeps failing and now my account is suspended. My card is fine!",
    "I got an email that a payment failed. I have money on the card.",
    "Payment failed, account locked. I need access today.",
], [
    "The payment failed because our system still had your old card expiry date; I've fixed it and reactivated "
    "your account right now.",
    "I've restored your account for 7 days while you check the card, and I'll retry the payment automatically "
    "on {day}.",
    "I've retried the charge manually and it went through, so your account is active again as of this minute.",
], [
    "If you'd like to use a different card, you can add it under Billing > Payment methods.",
])
S("billing-promo-code", "billing", "problem", "your promo code", [
    "My promo code {promo} says invalid at checkout, but the email says it's valid until the end of the month.",
    "The discount code {promo} isn't working. I've tried it 3 times.",
    "Code {promo} not working??",
], [
    "The {promo} code was set up with the wrong expiry date on our side; I've applied the discount to your "
    "account directly, so it will show at checkout right now.",
    "I've fixed {promo} on your account, and if you already paid full price, I've refunded the difference today.",
    "I've applied the {promo} discount manually to your basket, and it's held for you for the next 24 hours.",
], [
    "Just refresh the checkout page and you'll see the discount.",
])
S("billing-charged-after-cancel", "billing", "problem", "the charge after cancelling", [
    "I cancelled my membership last month but you charged me {amount} again.",
    "Why was I billed {amount} after I cancelled?",
    "Cancelled in {pmonth}, still charged {amount}. I want my money back.",
], [
    "Your cancellation request was never completed properly; I've refunded the {amount} today and fully closed "
    "the subscription.",
    "I've reversed the {amount} charge and confirmed the cancellation, so no further payments will be taken; "
    "the refund arrives in 3-5 business days.",
    "I've refunded {amount} to your card and emailed you a cancellation confirmation for your records.",
], [
    "Your refund reference is {case}.",
])
S("billing-trial-charged", "billing", "problem", "the trial charge", [
    "I only signed up for the free trial and got charged {amount}.",
    "I thought the trial was free? I just saw {amount} on my statement.",
    "Trial ended and you took {amount} without warning.",
], [
    "I've refunded the {amount} in full today and cancelled the paid plan, so you won't be charged again.",
    "I've reversed the {amount} charge - it will be back in 3-5 business days - and turned off auto-renewal.",
    "I've refunded the {amount} and extended your trial by 7 days, in case you'd still like to try it out.",
], [
    "You'll get a reminder email 3 days before any future trial ends.",
])
S("billing-update-card", "billing", "request", "your payment details", [
    "My card expired. How do I update it so my service doesn't stop?",
    "I have a new card ending {last4}. Where do I change it?",
    "Need to change my card details.",
], [
    "I've sent a secure link to your email to add the new card; it's valid for 24 hours, and your service won't "
    "be interrupted meanwhile.",
    "You can update it under Billing > Payment methods; I've also paused the next charge until {day} so there's "
    "time to change it.",
    "I've put a 14-day grace period on your account, so nothing stops while you add the new card via the link I "
    "just emailed.",
], [
    "For security, please never send card numbers over chat.",
])
S("billing-invoice-correction", "billing", "problem", "the invoice details", [
    "Our invoice has the wrong company name and VAT number. We need it corrected for our accounts.",
    "The invoice for {pmonth} is addressed to the wrong company. Can you fix it?",
    "Wrong billing address on my invoices.",
], [
    "I've unlocked your billing details so you can correct them; the new invoice is generated automatically as "
    "soon as you save.",
    "Reply with the correct details and I'll reissue the invoice the same day.",
    "I've voided the incorrect invoice and sent you an edit link; once you save the right details, the corrected "
    "one arrives within 1 business day.",
], [
    "All future invoices will use the updated details.",
])
S("billing-late-fee", "billing", "problem", "the late fee", [
    "I was charged a {amount} late fee but I paid on time. I have the receipt.",
    "Why is there a late payment fee of {amount}? My payment went through on the due date.",
    "I dispute the {amount} late fee.",
], [
    "Your payment arrived on the due date but posted a day late on our side, so I've removed the {amount} fee today.",
    "I've waived the {amount} late fee, and the credit will show on your next bill.",
    "I've reversed the {amount} fee and set up a reminder 3 days before future due dates.",
], [
    "You don't need to send the receipt - I can see the payment on our end.",
])
S("billing-annual-refund", "billing", "request", "the annual plan refund", [
    "I paid for a year but need to cancel after 2 months. Can I get a partial refund?",
    "I signed up for the annual plan by accident, I meant monthly. Refund?",
    "Annual plan: I want to cancel and get the rest back.",
], [
    "I've cancelled your annual plan and refunded the unused months today; it will reach your card within 5 "
    "business days.",
    "I've switched you to monthly billing and refunded the annual payment minus this month's fee, processed today.",
    "I've issued a prorated refund for the remaining months, and you'll keep access until the end of this month.",
], [
    "You'll get an email with the exact refund breakdown within the hour.",
])

# ---------------------------------------------------------------- accounts and security
S("account-password-reset", "account", "problem", "your password reset", [
    "I forgot my password and the reset email never arrives.",
    "I've clicked 'forgot password' three times and got nothing. Can't log in.",
    "Password reset not working.",
], [
    "I've sent a fresh password reset link to the email on your account just now; it's valid for 1 hour.",
    "Your email provider was blocking our messages, so I've resent the link from a different address - it "
    "should arrive within 5 minutes.",
    "I've sent a reset link by text message to the phone number on file instead; it arrives within a minute "
    "and works for 30 minutes.",
], [
    "Please check your spam or promotions folder if it's not in your inbox.",
    "After resetting, you'll be asked to log in again on your other devices.",
])
S("account-locked", "account", "problem", "your locked account", [
    "My account got locked after too many login attempts. I need it for work today.",
    "Locked out of my account! It says try again in 24 hours.",
    "Account locked. Please unlock.",
], [
    "I've unlocked your account right now, so you can log in immediately.",
    "I've lifted the lock and sent a one-time login link to your email; it's valid for the next 30 minutes.",
    "I've cleared the 24-hour lockout, so you can sign in straight away.",
], [
    "If you're unsure of the password, use 'forgot password' first so it doesn't lock again.",
])
S("account-2fa-lost-phone", "account", "problem", "your two-factor login", [
    "I lost my phone and can't get my two-factor codes. How do I get into my account?",
    "New phone, and the authenticator app is gone. I can't log in.",
    "Lost my 2FA codes with my old phone.",
], [
    "I've emailed you an identity check link; once you complete it, I'll reset your two-factor login within 1 hour.",
    "I've sent a one-time recovery code to your backup email; use it to log in today, then set up 2FA on the "
    "new phone.",
    "Confirm your details in the secure form I just emailed, and I'll remove the old device within 30 minutes.",
], [
    "Once you're back in, please save the new backup codes somewhere safe.",
])
S("account-email-change", "account", "request", "your email change", [
    "I need to change the email on my account. I don't use the old one any more.",
    "How do I update my login email?",
    "Change my account email please.",
], [
    "Reply with the new address and I'll send a confirmation link to it straight away; the change takes effect "
    "the moment you click it.",
    "You can change it under Settings > Account; I've sent a one-time code to your phone so you can confirm the "
    "change without the old inbox.",
    "I've removed the step that needs your old inbox, so you can update the address in Settings right now.",
], [
    "Your order history and saved details stay exactly the same.",
])
S("account-data-deletion", "account", "request", "your deletion request", [
    "Please delete my account and all my personal data.",
    "I want all my data erased from your systems under GDPR.",
    "Delete everything about me. I'm done with this service.",
], [
    "I've submitted your deletion request today; your account and personal data will be permanently erased "
    "within 30 days, and you'll get an email when it's complete.",
    "Your account is now deactivated and scheduled for full erasure within 30 days; your request reference is {case}.",
    "I've started the deletion now, and you'll receive a confirmation email within 24 hours, then a final "
    "notice once everything is erased.",
], [
    "I've also cancelled your subscription so you won't be charged again.",
    "We only keep invoices for as long as tax law requires, and nothing else.",
])
S("account-hacked", "account", "urgent", "the suspicious login", [
    "I just got an alert about a login from another country. That wasn't me!",
    "Someone changed my password and I can't get in. I think I've been hacked.",
    "Account hacked. There are strange orders in my history.",
], [
    "I've signed out every session on your account, locked it, and sent you a secure reset link that's valid "
    "for 1 hour.",
    "I've frozen the account so nothing else can be changed, and I've cancelled any orders placed in the last "
    "24 hours.",
    "I've reset your password, removed the unknown device, and sent a recovery link to your verified email just now.",
], [
    "Please turn on two-factor authentication once you're back in; it takes 2 minutes in Settings > Security.",
    "If any payments went through, reply here and I'll refund them the same day.",
])
S("account-username-change", "account", "request", "your username", [
    "Can I change my username? I made it years ago and it's embarrassing.",
    "Is it possible to update my display name?",
    "Username change please.",
], [
    "Usernames can change once every 30 days under Settings > Profile; I've reset your limit so you can do it "
    "right now.",
    "Reply with the name you'd like, and I'll check it's available and update it today.",
    "I've unlocked the username field on your profile, so you can edit it right now.",
], [
    "Your old username will redirect to the new one for 14 days.",
])
S("account-data-export", "account", "request", "your data request", [
    "I'd like a copy of all the personal data you hold on me.",
    "Can I get an export of my account data?",
    "Data access request: please send me my data.",
], [
    "I've started your data export; a download link will be emailed to you within 48 hours and stays valid for "
    "7 days.",
    "Your request is logged under {case}, and you'll receive a full copy of your data within 30 days - usually "
    "much sooner.",
    "I've enabled self-service export on your account: go to Settings > Privacy > Export, and the file is ready "
    "in about 10 minutes.",
], [
    "The file is password-protected; the password arrives in a separate text message.",
])
S("account-merge-duplicates", "account", "request", "your duplicate accounts", [
    "I somehow have two accounts with different emails. Can you merge them?",
    "My orders are split between two accounts. Can they be combined?",
    "Please merge my two accounts.",
], [
    "Reply with the email you'd like to keep, and I'll merge the accounts today and close the other one.",
    "I've started merging both accounts into your main one, and your full order history will show there within "
    "1 hour.",
    "I'm moving your orders and saved addresses into one account now; you'll get a confirmation email once it's "
    "done later today.",
], [
    "Any loyalty points will be added together as well.",
])
S("account-verification-email", "account", "problem", "your verification email", [
    "I signed up yesterday but the verification email never came.",
    "I can't activate my account - no confirmation email.",
    "No verification email. Already checked spam.",
], [
    "I've verified your account manually, so you can log in right now.",
    "I've resent the verification email just now from a different server; it should arrive within 5 minutes.",
    "Your email provider was rejecting our messages, so I've activated the account for you and sent a welcome "
    "text instead.",
], [
    "To make sure future emails arrive, add our address to your contacts.",
])
S("account-close", "account", "request", "closing your account", [
    "Please close my account. I've moved to another provider.",
    "How do I close my account permanently?",
    "Close my account, thanks.",
], [
    "I've closed your account as of today and confirmed by email that no further charges will be taken.",
    "Your account is scheduled to close at the end of today, and you'll receive a closure confirmation within "
    "24 hours.",
    "I've closed the account and refunded your remaining credit, which will be back with you in 3-5 business days.",
], [
    "You can still download past invoices from the Billing page until tonight.",
])
S("account-unsubscribe", "account", "problem", "the marketing emails", [
    "I've unsubscribed from your emails three times and I still get them daily.",
    "Stop sending me promotional emails!",
    "Unsubscribe me from everything.",
], [
    "I've removed you from every marketing list right now; emails already scheduled may arrive for up to 48 "
    "hours, then they stop.",
    "I've turned off all promotional emails and texts on your account and added you to our do-not-contact list today.",
    "I found an old second profile that was still subscribed and removed both, so the emails will stop within "
    "48 hours.",
], [
    "You'll still get essential messages like receipts and security alerts.",
])

# ---------------------------------------------------------------- telecom and internet
S("telecom-outage", "telecom", "problem", "the outage", [
    "My internet has been down since this morning. I work from home!",
    "No internet at all since {pday} night. What's going on?",
    "Broadband down again in my area.",
], [
    "There's a cable fault in your area that our engineers are repairing now, and service should be back by "
    "6pm today.",
    "I can see the fault on your line; a technician is booked for tomorrow {window}, and I've credited the lost "
    "days to your next bill.",
    "A local exchange fault is affecting your street and is due to be fixed by {day}, so I'm sending a 4G "
    "backup hub today to keep you online.",
], [
    "I'll send you a text the moment the service is restored.",
])
S("telecom-slow-speed", "telecom", "problem", "your slow connection", [
    "I'm paying for 500 Mbps and getting about 40. It's been like this for weeks.",
    "My internet is painfully slow in the evenings.",
    "Speeds are terrible. Not what I'm paying for.",
], [
    "I've run a line test and found a fault at the cabinet; an engineer will fix it by {day}, and I've credited "
    "this month's difference to your bill.",
    "Your router was stuck on old firmware, so I've pushed an update remotely; restart it tonight and speeds "
    "should recover right away.",
    "I've booked a technician for {day} {window} to check the wiring, and I'll halve your bill until speeds are "
    "back to normal.",
], [
    "You'll get a text confirming the details within the hour.",
])
S("telecom-router-faulty", "telecom", "problem", "your router", [
    "My router keeps restarting every few minutes. The lights are flashing red.",
    "The router you sent me is broken. No lights at all.",
    "Router dead. I need a new one.",
], [
    "I've sent a replacement router by next-day delivery, so it will arrive tomorrow before 1pm.",
    "I've ordered a new router that ships today and arrives by {day}, with a prepaid bag to return the old one.",
    "A technician will bring and set up a new router on {day} {window}, at no cost.",
], [
    "When it arrives, just plug it in where the old one was - it's already configured for your line.",
])
S("telecom-sim-not-working", "telecom", "problem", "your new SIM", [
    "I put in my new SIM yesterday and it still says no service.",
    "The replacement SIM you sent doesn't work. I can't make calls.",
    "New SIM not activated.",
], [
    "Your SIM hadn't been activated on our side; I've activated it now, so restart your phone and it will "
    "connect within 10 minutes.",
    "I've re-sent the activation signal to your SIM; turn the phone off and on, and it should work within 15 minutes.",
    "The SIM was faulty, so I've sent a new one by express that arrives tomorrow and activates as soon as it's "
    "inserted.",
], [
    "If it still shows no service after a restart, reply here and I'll call you on another number.",
])
S("telecom-roaming-not-working", "telecom", "problem", "roaming on your line", [
    "I just landed in {city} and my phone has no data. Roaming is supposed to be included.",
    "Roaming isn't working in {city}. I need maps!",
    "No signal abroad in {city}. Help.",
], [
    "Roaming was switched off on your line; I've turned it on now, so restart your phone and you'll have data "
    "in {city} within 5 minutes.",
    "I've enabled roaming and added a free 5GB travel pass for the trouble; it's active right now.",
    "I've reset your network settings remotely; switch your phone off and on and it will connect to a partner "
    "network in {city} straight away.",
], [
    "Make sure data roaming is also switched on in your phone's settings.",
])
S("telecom-roaming-bill", "telecom", "problem", "the roaming charges", [
    "My bill is {amount} higher because of roaming charges. I thought my plan covered Europe.",
    "Huge roaming charge of {amount} on my bill. No one warned me.",
    "{amount} in roaming charges?! That can't be right.",
], [
    "Your plan does include roaming, but it wasn't applied; I've removed the {amount}, and you'll see a "
    "corrected bill within 24 hours.",
    "I've credited {amount} to your account today, and it will show on this month's bill.",
    "I've reversed the {amount} and set a spending cap, so you'll get a text before any future charges.",
], [
    "Usage alerts are now on, so you'll hear from us before any roaming charge is added.",
])
S("telecom-number-port", "telecom", "request", "your number transfer", [
    "I'm switching to you and want to keep my old number. How does that work?",
    "My number transfer has been pending for 5 days.",
    "Please port my number over.",
], [
    "I've submitted the transfer to your old provider, and your number moves over on {day}; your phone may lose "
    "signal for up to 2 hours that morning.",
    "I've pushed the transfer through with your old provider today, and your number will be active on your new "
    "SIM by tomorrow at 10am.",
    "I've escalated the transfer with your previous provider; it completes on {day}, and I'll text you on the "
    "new SIM as soon as it's done.",
], [
    "Keep your old SIM in until it stops working, then swap to the new one.",
])
S("telecom-move-service", "telecom", "request", "moving your service", [
    "I'm moving house on {date}. Can you move my internet?",
    "Moving next month and I need broadband at my new place.",
    "Relocate my internet service please.",
], [
    "Reply with your new address and moving date, and I'll book the transfer today so the line is live on the "
    "day you move in - there's no moving fee.",
    "I've opened a home-move order; once you send the new address, an engineer visit within 7 days of your "
    "move is guaranteed.",
    "I've waived the relocation fee and reserved an installation slot; confirm the new address and I'll lock "
    "in the date within 24 hours.",
], [
    "Your current service keeps running until the day before you move.",
])
S("telecom-technician-no-show", "telecom", "problem", "the missed appointment", [
    "I took a day off work and your technician never showed up.",
    "A technician was booked for this morning. No one came, no call.",
    "Engineer didn't turn up. Again.",
], [
    "I've rebooked the first slot available, tomorrow {window}, and the technician will call you 30 minutes "
    "before arriving.",
    "I've added a $30 credit to your account for the missed visit and booked a new appointment on {day} {window}.",
    "I've escalated this to the field manager and confirmed a priority visit on {day} {window}, with a text "
    "reminder the evening before.",
], [
    "If that time doesn't suit you, reply and I'll change it today.",
])
S("telecom-wifi-drops", "telecom", "problem", "your Wi-Fi dropping", [
    "My Wi-Fi keeps dropping every hour or so. Super annoying on video calls.",
    "The connection cuts out several times a day.",
    "Wi-Fi unstable. Fix?",
], [
    "I've moved your router to a less crowded channel remotely, which should stop the drops from tonight.",
    "Your line was resyncing every hour, so I've reset it from our side; I'll monitor it for 48 hours and send "
    "an engineer if it drops again.",
    "I'm sending you a free Wi-Fi booster that arrives by {day} to cover the weak spots in your home.",
], [
    "Restarting the router once tonight will help the changes take effect.",
])
S("telecom-phone-stolen", "telecom", "urgent", "your lost phone", [
    "My phone was stolen this morning. Please block my SIM!",
    "I lost my phone on the train. Can you stop anyone using my number?",
    "Phone stolen, block the SIM now.",
], [
    "I've blocked your SIM right now, so no calls, texts or data can be used on it, and a replacement SIM with "
    "the same number ships today.",
    "Your SIM and phone are blocked as of this minute, and a new SIM with your number will arrive by {day}.",
    "I've suspended your line and barred the phone's serial number on every network; your replacement SIM "
    "goes out by express today.",
], [
    "If you report it to the police, the reference is useful for your insurer.",
])
S("telecom-termination-fee", "telecom", "problem", "the termination fee", [
    "I'm being charged {amount} to leave, but my contract ended last month.",
    "Why an early termination fee of {amount}? I'm out of contract.",
    "Charged a {amount} exit fee by mistake.",
], [
    "Your contract did end last month, so I've removed the {amount} fee, and you'll get a corrected final bill "
    "within 48 hours.",
    "I've refunded the {amount} termination fee today; it will be back in your account within 3-5 business days.",
    "I've cancelled the {amount} charge and sent you written confirmation that you owe nothing further.",
], [
    "Your reference for this is {case}.",
])
S("telecom-no-signal-home", "telecom", "problem", "the signal at your home", [
    "I get zero mobile signal at home since last week. It used to be fine.",
    "My phone has no bars inside my house.",
    "No signal at home anymore.",
], [
    "A nearby mast is under maintenance until {day}; I've turned on Wi-Fi calling for your line so you can make "
    "calls at home right now.",
    "I've logged a coverage fault, reference {case}, and our engineers will check the local mast by {day}.",
    "I'm sending a free signal booster that plugs into your broadband; it arrives by {day} and fixes indoor "
    "signal straight away.",
], [
    "To use Wi-Fi calling, just switch it on in your phone's settings.",
])

# ---------------------------------------------------------------- travel
S("travel-flight-delay", "travel", "problem", "the flight delay", [
    "My flight {flight} is delayed by 5 hours. Am I entitled to anything?",
    "Flight {flight} delayed again, and I'm stuck at the airport with two kids.",
    "{flight} delayed. What are my options?",
], [
    "I've added meal vouchers to your booking, which you can collect at the service desk now, and I've started "
    "your delay compensation claim, reference {case}.",
    "I can move you to the next flight, leaving in 2 hours, at no cost - reply 'yes' and I'll confirm it "
    "immediately.",
    "Your delay qualifies for compensation, so I've submitted the claim, and you'll receive payment within 14 days.",
], [
    "Keep your food receipts and we'll reimburse them too.",
])
S("travel-flight-cancelled", "travel", "problem", "the cancelled flight", [
    "My flight {flight} tomorrow was just cancelled. I need to get to {city} for a wedding!",
    "Flight {flight} to {city} cancelled, no explanation. How do I get there?",
    "{flight} to {city} cancelled. I need a new flight.",
], [
    "I've rebooked you on the next available flight to {city}, departing tomorrow at 9:40am, and your new "
    "boarding pass is in your email.",
    "I've moved you to a partner airline flight to {city} leaving tonight at 7:15pm, at no extra cost.",
    "I've put you on the first flight to {city} tomorrow morning and booked you a hotel near the airport tonight.",
], [
    "You can also claim compensation; I've started that for you under reference {case}.",
    "If you'd rather not travel, reply 'refund' and the full fare will be back on your card within 7 days.",
])
S("travel-lost-luggage", "travel", "problem", "your missing luggage", [
    "My suitcase didn't arrive on flight {flight}. Everything I need is in there.",
    "My luggage is lost after landing in {city}. What do I do?",
    "Bag missing after my flight.",
], [
    "I've traced your bag: it was left at the connecting airport and will be on the next flight, delivered to "
    "your accommodation by tomorrow evening.",
    "I've opened a baggage claim, reference {case}, and you can spend up to $150 on essentials today, which "
    "we'll reimburse.",
    "Your bag has been located and will be couriered to you by {day}; you'll get a text with the delivery window.",
], [
    "Keep receipts for any toiletries or clothes you buy in the meantime.",
])
S("travel-damaged-luggage", "travel", "problem", "your damaged suitcase", [
    "My suitcase came off the belt with a broken wheel and a cracked shell.",
    "The airline destroyed my luggage on flight {flight}.",
    "Bag damaged in transit.",
], [
    "I've logged a damage claim, reference {case}, and you'll receive a repair or cash settlement decision "
    "within 5 business days.",
    "I've approved a replacement suitcase of the same size, which will be delivered to your home by {day}.",
    "I've arranged for a repair partner to collect the case on {day}; the repair is free and takes about a week.",
], [
    "Please keep your boarding pass and bag tag, as they speed things up.",
])
S("travel-booking-change", "travel", "request", "your booking change", [
    "I need to change my booking {ref} to a week later. Is that possible?",
    "Can I move my trip to different dates? Booking {ref}.",
    "Change dates on {ref} please.",
], [
    "Your fare allows free changes, so I've held seats a week later; reply to confirm and I'll switch booking "
    "{ref} today.",
    "I've moved booking {ref} to the new dates with no change fee, and the updated itinerary is in your inbox now.",
    "Booking {ref} can be changed for free, so send me the dates you want and I'll issue new tickets within the hour.",
], [
    "Your seat choices and baggage carry over to the new flights.",
])
S("travel-hotel-overbooked", "travel", "problem", "the overbooked room", [
    "I just arrived at the hotel and they say they're overbooked. It's 11pm!",
    "The hotel has no room for me even though I have booking {ref}.",
    "Overbooked. I'm standing in the lobby.",
], [
    "I've secured you a room at a nearby hotel of the same standard, and the front desk is calling a taxi for "
    "you now at our cost.",
    "I've booked you into a partner hotel 5 minutes away, paid in full, and refunded tonight's original booking.",
    "I've found an upgraded room at a nearby hotel for tonight; the confirmation is in your email now, and the "
    "taxi there is on us.",
], [
    "If you'd like to return to the original hotel tomorrow, they've guaranteed you a room from 2pm.",
])
S("travel-name-misspelled", "travel", "problem", "the name on your ticket", [
    "My name is misspelled on my flight ticket for booking {ref}. Will I be allowed to fly?",
    "The ticket has a typo in my surname.",
    "Name wrong on my ticket.",
], [
    "I've corrected the spelling on your ticket free of charge, and the updated e-ticket is in your inbox now.",
    "Reply with your name exactly as it is on your passport, and I'll fix the ticket within the hour - there's "
    "no fee.",
    "I've sent the name correction to the airline; it will show on your booking within 24 hours, with a new "
    "e-ticket.",
], [
    "Bring the new e-ticket and your passport to check-in and you'll be fine.",
])
S("travel-trip-refund", "travel", "problem", "your trip refund", [
    "Our tour was cancelled by you two weeks ago and we still haven't been refunded {amount}.",
    "My trip got cancelled. Where's my {amount}?",
    "Refund of {amount} for a cancelled trip?",
], [
    "I've processed the {amount} refund today, and it will reach your card within 5 business days.",
    "Your refund was waiting for an approval that should have been automatic; I've approved it and the {amount} "
    "is on its way now.",
    "I've sent the {amount} by bank transfer today, which usually arrives within 2 business days.",
], [
    "Your refund number is {case}.",
])
S("travel-seat-not-given", "travel", "problem", "the seat you paid for", [
    "I paid {amount} for an extra-legroom seat and was moved to a normal seat.",
    "Paid for a window seat and got a middle seat. {amount} wasted.",
    "The seat I paid {amount} for wasn't given to me.",
], [
    "I've refunded the {amount} seat fee today; it will be back on your card within 5 business days.",
    "I've refunded the {amount} and added free seat selection to your next booking.",
    "I've refunded the {amount} in full today and reported the seat swap to the cabin crew manager.",
], [
    "You don't need to fill in any form.",
])
S("travel-missed-connection", "travel", "urgent", "your missed connection", [
    "My first flight was late and I missed my connection to {city}. What now?",
    "I missed my connecting flight to {city} because of your delay. I'm stuck.",
    "Missed connection to {city}. Help.",
], [
    "I've rebooked you on the next flight to {city}, leaving in 3 hours, and your new boarding pass is in your email.",
    "The next connection to {city} is tomorrow morning, so I've booked you a hotel near the airport tonight "
    "with meals included.",
    "I've put you on a partner airline to {city} leaving at 6:20pm today, and your checked bag will be "
    "transferred automatically.",
], [
    "Show the email at the transfer desk if anyone asks.",
])
S("travel-hotel-room-dirty", "travel", "problem", "your room", [
    "Our hotel room is dirty - stained sheets and the bathroom wasn't cleaned.",
    "The room is filthy. Not what we paid for.",
    "Disgusting room, booking {ref}.",
], [
    "I've asked the hotel to move you to a clean room now, and someone will bring the key within 20 minutes.",
    "I've arranged a room upgrade for the rest of your stay and refunded tonight's rate.",
    "The hotel has a clean room ready for you now, and I've applied a 30% discount to your stay.",
], [
    "If there's any problem getting the new room, reply here and I'll call the manager.",
])
S("travel-rental-car-missing", "travel", "problem", "your rental car", [
    "I'm at the rental desk and they say there's no car for my reservation.",
    "No car available despite my booking {ref}. I'm stranded at the airport.",
    "Rental car not available.",
], [
    "I've secured a car from a partner desk in the same terminal at no extra cost, and the voucher is in your "
    "email now.",
    "I've upgraded you to a larger car from the next delivery, which will be ready in 30 minutes.",
    "I've cancelled the booking with a full refund and booked a car with another company that's waiting for you now.",
], [
    "Show the confirmation email at the counter.",
])
S("travel-special-assistance", "travel", "request", "assistance at the airport", [
    "My mother uses a wheelchair. Can you arrange assistance for her flight {flight}?",
    "I need help getting through the airport for flight {flight}. I have limited mobility.",
    "Special assistance request for {flight}.",
], [
    "I've added wheelchair assistance to flight {flight}; a staff member will meet you at check-in and stay with "
    "you to the gate.",
    "Assistance is booked for both departure and arrival on {flight}, and the confirmation email will reach you "
    "within 24 hours.",
    "I've booked assistance from check-in to the seat on {flight}, plus priority boarding.",
], [
    "Please arrive at least 2 hours before departure and go to the assistance desk.",
])
S("travel-train-delay", "travel", "problem", "your delayed train", [
    "My train was 90 minutes late yesterday. How do I claim compensation?",
    "The train was delayed an hour and I missed my meeting. Refund?",
    "Late train. Compensation?",
], [
    "I've submitted your claim for a 50% refund of the ticket price, and it will arrive within 10 business days.",
    "Your delay qualifies for a full refund, so I've processed it to your original payment method today.",
    "I've filed your compensation claim, reference {case}, and the money will be paid within 14 days.",
], [
    "You don't need to send your ticket - we've matched it from your account.",
])

# ---------------------------------------------------------------- software and SaaS
S("saas-bug-report", "saas", "problem", "the bug you found", [
    "The 'Save' button in the editor does nothing since yesterday's update.",
    "When I click Save in the editor, nothing happens. Tried three browsers.",
    "Found a bug: the editor won't save my changes.",
], [
    "I've reproduced the problem, and our engineers have a fix in tonight's release, so saving will work by "
    "tomorrow morning.",
    "I've logged this as a high-priority bug, reference {case}, and the fix is scheduled for release on {day}.",
    "I've rolled your account back to the previous editor version, so saving works again right now while we fix it.",
], [
    "I'll email you as soon as the fix is live.",
])
S("saas-app-crash", "saas", "problem", "the crash", [
    "The app crashes every time I open it on my phone.",
    "Your app closes as soon as I try to open it since the update.",
    "App keeps crashing after the update.",
], [
    "This is a known issue with the latest update; a fixed version goes live in the app store today, so please "
    "update in a few hours.",
    "I've reproduced the crash, and our team is releasing a patch by {day}; until then, the web version works "
    "normally.",
    "I've pulled the crash report from your device and found the cause; a fix is going out within 24 hours.",
], [
    "I'll send you a message the moment the update is available.",
])
S("saas-export-data", "saas", "request", "exporting your data", [
    "How can I export all my projects to CSV?",
    "I need to download all our data before our contract ends.",
    "Export everything please.",
], [
    "I've started a full export of your workspace, and you'll get a download link by email within 2 hours.",
    "Go to Settings > Data > Export and choose CSV - I've also raised your export limit so it includes "
    "everything at once.",
    "I've prepared a complete export of your account and sent a download link that stays valid for 7 days.",
], [
    "Your data stays accessible for 30 days after the contract ends.",
])
S("saas-api-key-leaked", "saas", "urgent", "your API key", [
    "I accidentally pushed our API key to a public repo. What do I do?",
    "Our API key leaked. I need it replaced now.",
    "API key compromised.",
], [
    "I've revoked the leaked key just now, so it can't be used, and a new key is ready in your dashboard under "
    "Developer > API keys.",
    "I've disabled the old key and checked the logs: there was no unusual usage. Your new key is available right now.",
    "I've rotated your key and blocked requests from unknown addresses for the next 24 hours.",
], [
    "Update the key in your apps within the next hour to avoid failures.",
    "Please remove the key from the repository's history too.",
])
S("saas-scheduled-reports", "saas", "request", "your question about reports", [
    "Is there a way to schedule reports to be emailed every Monday?",
    "Can reports go out automatically each week? Doing it by hand is a pain.",
    "Are scheduled reports possible?",
], [
    "Yes - open the report, click Schedule and choose weekly; I've turned the feature on for your workspace, so "
    "you can set it up now.",
    "Yes! I've set up a weekly schedule on your main report, and the first email goes out this Monday at 9am.",
    "It's included in your plan: go to Reports > Schedule, and the first report is sent on the next matching day.",
], [
    "You can add up to 10 recipients per scheduled report.",
])
S("saas-share-external", "saas", "request", "sharing with external people", [
    "Can I share a project with a client outside my company?",
    "Is it possible to give a freelancer access without paying for another seat?",
    "External sharing?",
], [
    "Yes - click Share, enter their email and choose 'Guest'; they get access right away without using a paid seat.",
    "I've turned on guest access for your workspace just now, so you can invite them from the Share menu immediately.",
    "Guests are free on your plan: use Share > Invite guest, and they'll get an email within a minute.",
], [
    "You can remove their access at any time from the same menu.",
])
S("saas-sync-broken", "saas", "problem", "syncing", [
    "My files haven't synced between my laptop and phone since {pday}.",
    "Changes I make on desktop don't show up on mobile.",
    "Sync is broken.",
], [
    "A server issue paused sync for some accounts; it's fixed now, and your files will catch up within the next hour.",
    "I've reset the sync token on your account; sign out and back in on both devices, and everything will sync "
    "within a few minutes.",
    "I've forced a full resync from our side, and your devices will match again within 30 minutes.",
], [
    "None of your files were lost.",
])
S("saas-sso-error", "saas", "problem", "your login error", [
    "Our whole team gets an SSO error when logging in this morning.",
    "Single sign-on stopped working for us. The error says 'invalid certificate'.",
    "SSO down for our company.",
], [
    "Your identity provider certificate expired last night; I've uploaded the renewed one on our side, so your "
    "team can log in right now.",
    "I've enabled temporary password login for your workspace for 24 hours while we fix the certificate issue.",
    "I've escalated this to our identity engineers, who will be on a call with your admin within 30 minutes.",
], [
    "Your admin will get an email with the details today.",
])
S("saas-data-loss", "saas", "problem", "the missing document", [
    "A whole document I worked on yesterday is gone!",
    "My project disappeared from my dashboard. Months of work.",
    "I deleted a file by mistake. Can you get it back?",
], [
    "I've restored it from last night's backup, and it's back in your workspace right now.",
    "I found it in the trash and restored it with full version history, so you won't lose any changes.",
    "I've recovered it from our 30-day backup, and it will reappear in your account within 1 hour.",
], [
    "You can also restore deleted files yourself from the Trash for up to 30 days.",
])
S("saas-slow-performance", "saas", "problem", "the slowness", [
    "The dashboard takes over a minute to load. It used to be instant.",
    "Everything in the app is really slow today.",
    "Super laggy, I can't work.",
], [
    "One of our servers in your region was overloaded; I've moved your workspace to a faster one, so it should "
    "load normally now.",
    "I've cleared a stuck background job on your account that was slowing everything down, so pages load "
    "instantly again.",
    "Our engineers are rolling out a performance fix by 5pm today, and I'll monitor your workspace until then.",
], [
    "Please refresh the page and tell me if it's still slow.",
])
S("saas-api-rate-limit", "saas", "problem", "the API limit", [
    "We keep hitting the API rate limit during our nightly sync. Can it be raised?",
    "Getting 429 errors all day. We're on the Pro plan.",
    "Our rate limit is too low.",
], [
    "I've doubled your API rate limit starting now, which covers your current usage with room to spare.",
    "Your plan allows a higher limit than was set; I've corrected it, so the 429 errors stop immediately.",
    "I've raised your limit for 30 days while our team reviews a permanent increase, which we'll confirm by {day}.",
], [
    "You can see your current limit on the Developer page.",
])
S("saas-add-seats", "saas", "request", "adding team members", [
    "How do I add a new colleague to our workspace?",
    "We need to add 3 more users to our account.",
    "Add a seat please.",
], [
    "I've added the extra seats to your plan today, and you'll only pay the prorated difference on your next invoice.",
    "Go to Team > Invite and enter their email - I've enabled the extra seats on your account, so it works "
    "right now.",
    "I've sent you an invite link that adds people to your workspace directly, and it works right away.",
], [
    "New members get an invitation email that's valid for 7 days.",
])
S("saas-calendar-integration", "saas", "problem", "the calendar integration", [
    "The calendar integration stopped showing my meetings.",
    "Calendar sync stopped after I changed my email password.",
    "Calendar integration broken.",
], [
    "The connection token expired; I've reset it, so reconnect under Settings > Integrations and your meetings "
    "will appear within 5 minutes.",
    "I've fixed a bug on our side that disconnected calendars this week, and your events will resync within the hour.",
    "I've re-linked your calendar from our end, and everything should show again right now.",
], [
    "Meetings for the next 30 days sync first.",
])
S("saas-notifications", "saas", "problem", "your notifications", [
    "I'm not getting any email notifications anymore.",
    "Notifications stopped arriving since last week.",
    "No alerts since last week.",
], [
    "Your email was on our bounce list after a temporary failure; I've removed it, so notifications start again "
    "within the hour.",
    "I've reset your notification settings on our side; reopen the app and alerts will come through right away.",
    "There's a notification bug in the latest version, and the fix ships on {day}; I've switched you to email "
    "alerts until then.",
], [
    "You can check your settings under Profile > Notifications.",
])
S("saas-license-invalid", "saas", "problem", "your license key", [
    "I bought a license yesterday and the key says 'invalid'.",
    "Your software says my license key is not valid.",
    "License key rejected.",
], [
    "Your key was issued for the wrong version; I've emailed you a new key that works right now.",
    "I've reactivated your license on our server, so the key will work if you try again now.",
    "I've reset your activations, since the old one was tied to a previous computer; you can activate again "
    "right now.",
], [
    "Copy and paste the key rather than typing it, to avoid mixing up similar characters.",
])
S("saas-update-regression", "saas", "problem", "the update", [
    "Since the latest update, I can't print reports anymore.",
    "Your update removed report printing, which I use every day!",
    "The update broke report printing.",
], [
    "That was a mistake in the update; a patch restores it tomorrow, and I've switched your account to the "
    "previous version right now.",
    "I've switched your account back to the previous version until the fix ships on {day}.",
    "I've logged this as a regression, reference {case}, and the fix ships in this week's release on {day}.",
], [
    "I'll let you know the moment it's back.",
])
S("saas-storage-full", "saas", "problem", "your storage", [
    "It says my storage is full but I deleted lots of files.",
    "I can't upload anything, storage is full.",
    "Storage full error even after cleaning up.",
], [
    "Deleted files still count until the trash is emptied, so I've emptied it for you, and 40% of your space is "
    "free now.",
    "Your storage figure was out of date; I've recalculated it, so you can upload again right now.",
    "I've added 50GB of free storage for 30 days while you decide whether you'd like a larger plan.",
], [
    "You can check usage any time under Settings > Storage.",
])

# ---------------------------------------------------------------- banking
S("bank-card-lost", "bank", "urgent", "your lost card", [
    "I think I lost my debit card somewhere today.",
    "I can't find my credit card ending {last4}. Please help.",
    "Lost card. Block it.",
], [
    "I've blocked your card right now so no one can use it, and a replacement will arrive within 3-5 business days.",
    "Your card is frozen as of this minute, and I've ordered a new one by express delivery that arrives by {day}.",
    "I've cancelled the card and added a virtual card to your app, so you can keep paying online today while the "
    "new one is on its way.",
], [
    "If you find the old card, just cut it up - it can't be reactivated.",
])
S("bank-card-fraud", "bank", "urgent", "the unauthorised transactions", [
    "There are three payments on my card I didn't make, totalling {amount}.",
    "Someone used my card online! {amount} spent at shops I've never heard of.",
    "Fraud on my account, {amount} gone.",
], [
    "I've blocked your card and credited the {amount} back to your account today while we investigate, "
    "reference {case}.",
    "I've frozen the card and opened a fraud claim for the {amount}, and a new card is on its way, arriving "
    "within 3 business days.",
    "I've stopped the card and reversed the {amount}; you'll see it back in your account within 24 hours.",
], [
    "We'll write to you within 10 business days with the outcome of the investigation.",
])
S("bank-blocked-payment", "bank", "problem", "the blocked payment", [
    "My card got declined buying a {gadget}. I have enough money.",
    "A payment of {amount} was blocked. It was me!",
    "Transaction blocked, why?",
], [
    "Our fraud system flagged the payment; I've confirmed it's you, so please try again now and it will go through.",
    "I've removed the block on your card, and payments to that shop are approved for the next 24 hours.",
    "The block was triggered by an unusual amount; I've lifted it, so you can retry right away.",
], [
    "If you're planning a big purchase, you can let us know in the app to avoid blocks.",
])
S("bank-transfer-delayed", "bank", "problem", "your transfer", [
    "I sent {amount} to my landlord two days ago and it still hasn't arrived.",
    "My transfer of {amount} is stuck as pending.",
    "Transfer of {amount} not arrived.",
], [
    "Your transfer was held for a routine check; I've released it, and the {amount} will reach the recipient "
    "within 2 hours.",
    "I've released the transfer of {amount}, and it will land in the recipient's account by the end of today.",
    "The transfer failed at the receiving bank, so I've re-sent the {amount} by instant payment, and it's "
    "arriving now.",
], [
    "No fees have been charged for the delay.",
])
S("bank-atm-no-cash", "bank", "problem", "the ATM withdrawal", [
    "The ATM didn't give me any cash but {amount} was taken from my account.",
    "The ATM swallowed my money! {amount} debited, nothing came out.",
    "ATM error, {amount} missing.",
], [
    "The ATM's logs confirm no cash was dispensed, so I've refunded the {amount} to your account today.",
    "I've credited the {amount} back right now as a temporary refund, while the ATM owner confirms the error "
    "within 5 business days.",
    "I've opened a dispute, reference {case}, and the {amount} will be back in your account within 48 hours.",
], [
    "There's nothing else you need to do.",
])
S("bank-new-card-missing", "bank", "problem", "your new card", [
    "My replacement card was supposed to come 10 days ago.",
    "Still no new card. My old one expires at the end of the month.",
    "My new card never arrived.",
], [
    "I've cancelled the card that was sent in case it was lost, and ordered a new one by express courier, "
    "arriving by {day}.",
    "I've added a virtual card to your app today, so you can pay straight away while the new one arrives within "
    "3 business days.",
    "I've re-issued the card to your branch, where it will be ready for pick-up tomorrow afternoon.",
], [
    "The PIN stays the same as on your old card.",
])
S("bank-pin-blocked", "bank", "problem", "your PIN", [
    "I forgot my card PIN. How can I reset it?",
    "I entered my PIN wrong 3 times and now it's blocked.",
    "PIN locked.",
], [
    "I've unblocked your PIN, and you can view it in the app under Card > Show PIN right now.",
    "I've sent a PIN reminder by post, which arrives within 3 business days; contactless still works until then.",
    "I've reset your PIN attempts, so you can set a new PIN at any of our ATMs today.",
], [
    "You'll need your card and phone with you to see the PIN in the app.",
])
S("bank-overdraft-fee", "bank", "problem", "the overdraft fee", [
    "I was charged a {amount} overdraft fee because my salary came in a day late.",
    "Why did you charge me {amount}? I was only overdrawn for a few hours.",
    "Overdraft fee of {amount}, please refund.",
], [
    "As it's the first time this has happened, I've refunded the {amount} fee today.",
    "I've reversed the {amount} charge, and it will show in your account within 24 hours.",
    "I've refunded the {amount} and turned on low-balance alerts, so you'll get a text before it happens again.",
], [
    "You can also set up a free $50 buffer in the app.",
])
S("bank-wrong-recipient", "bank", "urgent", "the payment to the wrong account", [
    "I sent {amount} to the wrong account by mistake. Can you get it back?",
    "Typo in the account number - {amount} went to a stranger!",
    "Wrong recipient for {amount}.",
], [
    "I've raised a recall request with the receiving bank today, reference {case}, and they must respond within "
    "10 business days.",
    "I've asked the other bank to freeze the {amount}, and we'll update you by {day} at the latest.",
    "I've started the recovery of the {amount}, and I'll call you as soon as the receiving bank confirms, "
    "usually within 5 business days.",
], [
    "Send the correct account details when you can, so we can redirect the money once it's recovered.",
])
S("bank-statement-request", "bank", "request", "your statement", [
    "I need bank statements for the last 6 months for a mortgage application.",
    "Can you send me an official statement with a bank stamp?",
    "Statement needed.",
], [
    "I've emailed official statements for the last 6 months as secure PDFs; they're in your inbox now.",
    "I've ordered a stamped statement, which will be posted to your home address within 3 business days.",
    "You can download them in the app under Statements, and I've also emailed them to you just now.",
], [
    "The PDFs open with the code we've just texted you.",
])
S("bank-card-abroad", "bank", "problem", "your card abroad", [
    "I'm in {city} and my card doesn't work anywhere.",
    "My card was declined at the hotel in {city}. I told you I was travelling!",
    "Card not working abroad in {city}.",
], [
    "I've turned on international payments for your card, so it works in {city} from right now.",
    "I've removed the block and added a travel note for {city} for the next 30 days, so you can try again immediately.",
    "The card was blocked as a precaution; I've unblocked it and raised your daily limit for the trip.",
], [
    "Cash withdrawals abroad are enabled now too.",
])
S("bank-app-login", "bank", "problem", "your app login", [
    "I can't log in to the banking app. It says 'device not recognised'.",
    "The app won't let me in since I got a new phone.",
    "Banking app login broken.",
], [
    "I've removed your old device, so you can register the new phone right now with the code I've just texted you.",
    "I've sent an activation code to your registered mobile number, which is valid for 15 minutes.",
    "I've reset your app access; reinstall and log in, and it will work right away.",
], [
    "For security, new payees are limited for 24 hours after registering a new device.",
])

# ---------------------------------------------------------------- food delivery
S("food-order-late", "food", "problem", "your late order", [
    "I ordered from {restaurant} an hour ago and it's still not here.",
    "My food from {restaurant} is 45 minutes late.",
    "Where's my food? {restaurant} order.",
], [
    "Your order left {restaurant} 10 minutes ago and will be with you in about {mins} minutes; I've refunded "
    "the delivery fee.",
    "The driver was held up by traffic, but your food is 5 minutes away, and I've added a $10 credit to your account.",
    "{restaurant} was behind on orders, so I've refunded your order in full, and it's still coming, within "
    "{mins} minutes.",
], [
    "You can track the driver live in the app.",
])
S("food-missing-item", "food", "problem", "the missing item", [
    "My {restaurant} order arrived without the {dish}.",
    "The {dish} was missing from my delivery.",
    "No {dish} in my bag.",
], [
    "I've refunded the {dish} to your card right now, and it will show within 3-5 business days.",
    "I've had the restaurant send a new {dish}, and it will arrive within {mins} minutes.",
    "I've refunded the {dish} and added a $5 credit for your next order.",
], [
    "No need to send a photo - it's already sorted.",
])
S("food-wrong-order", "food", "problem", "the wrong order", [
    "I got someone else's order. I ordered the {dish}.",
    "Wrong food delivered - this isn't the {dish} I ordered and it has meat in it.",
    "Not my order. I ordered {dish}.",
], [
    "I've refunded your order in full, and a fresh {dish} is on its way, arriving within {mins} minutes.",
    "I've placed a priority reorder of the {dish} at no charge, arriving within {mins} minutes, and refunded the "
    "original.",
    "I've issued a full refund today and added a $10 credit to your account.",
], [
    "Please don't eat the wrong food if you have any dietary concerns - you can throw it away.",
])
S("food-cold-food", "food", "problem", "your cold food", [
    "My food arrived completely cold.",
    "The pizza was cold and soggy when it got here.",
    "Cold food again.",
], [
    "I've refunded the meal in full, and it will be back on your card within 3-5 business days.",
    "I've refunded 50% of your order and added a $10 credit for next time.",
    "I've sent a fresh, hot replacement at no charge, arriving within {mins} minutes.",
], [
    "I've also flagged the delay with our driver team.",
])
S("food-allergy", "food", "urgent", "the allergy mistake", [
    "I asked for no peanuts because of my allergy and the dish has peanuts on it!",
    "The order had nuts despite my allergy note. My son almost ate it.",
    "Allergy note ignored, nuts in my food.",
], [
    "I've refunded your order in full and raised a formal safety report with the restaurant, reference {case}, "
    "which will be reviewed within 24 hours.",
    "I've issued a full refund and stopped the restaurant taking allergy orders until it has been reviewed.",
    "I've refunded the order, and our food safety manager will call you within 2 hours.",
], [
    "If anyone has symptoms, please get medical help right away.",
])
S("food-never-arrived", "food", "problem", "the undelivered order", [
    "The app says my order was delivered but the driver never came.",
    "The driver marked it delivered and left. I have no food.",
    "Order never arrived.",
], [
    "I've refunded the order in full right now, and you'll see it within 3-5 business days.",
    "I've arranged a new order at no cost from the same restaurant, arriving in about {mins} minutes.",
    "I've refunded your order and added a $10 credit, and the driver's account is under review.",
], [
    "You don't need to do anything else.",
])
S("food-charged-cancelled", "food", "problem", "the charge for your cancelled order", [
    "I cancelled my order within a minute but I was still charged {amount}.",
    "The restaurant cancelled my order and I still paid {amount}.",
    "Charged {amount} for a cancelled order.",
], [
    "I've refunded the {amount} today, and it will appear within 3-5 business days.",
    "The {amount} is only a pending authorisation; I've released it, so it will disappear within 48 hours.",
    "I've refunded the {amount} and added a $5 credit to your account for the trouble.",
], [
    "Your reference is {case}.",
])
S("food-spilled", "food", "problem", "the spilled order", [
    "My soup spilled all over the bag. Half of it is gone.",
    "The drinks leaked everywhere and ruined my order.",
    "My order arrived spilled.",
], [
    "I've refunded the damaged items to your card, and they'll show in 3-5 business days.",
    "I've sent a replacement, arriving in about {mins} minutes, and given you free delivery on your next order.",
    "I've refunded the whole order today, since you shouldn't pay for a mess.",
], [
    "I've passed packing feedback on to the restaurant.",
])

# ---------------------------------------------------------------- utilities
S("utility-power-cut", "utility", "problem", "the power cut", [
    "We've had no power since 3am. Any idea when it's coming back?",
    "Power's out on our whole street.",
    "No electricity. Kids at home.",
], [
    "A storm damaged a cable near you; engineers are on site and power should be back by 2pm today.",
    "I can see the fault on your street, and repairs are due to finish by 6pm; you'll get a text when power is "
    "restored.",
    "There's a fault at the local substation, with repairs expected by tonight, and you'll get a $30 "
    "compensation credit on your next bill.",
], [
    "If anyone at home relies on medical equipment, reply now and I'll put you on the priority list.",
])
S("utility-high-bill", "utility", "problem", "your bill", [
    "My electricity bill is {amount} this month - triple the usual.",
    "This bill of {amount} can't be right. Nothing changed at home.",
    "Bill way too high, {amount}.",
], [
    "The bill used an estimated reading; I've corrected it to your real usage, and you'll get a new bill within "
    "48 hours.",
    "I've put the {amount} bill on hold, so no payment is taken, while a meter check is done by {day}.",
    "I found a meter reading error and reduced the bill; the new amount will show in your account within 24 hours.",
], [
    "If you have a recent photo of the meter, send it and we'll confirm even faster.",
])
S("utility-meter-reading", "utility", "request", "your meter reading", [
    "I want to submit a meter reading but the website gives an error.",
    "Can I give you my meter reading here?",
    "Meter reading submission isn't working.",
], [
    "Reply with the reading, and I'll add it right now so your next bill uses it.",
    "The website error was fixed this morning, and I've reopened your reading window for 7 days, so you can "
    "submit it now.",
    "I've booked a free meter reader visit for {day} {window}.",
], [
    "A photo of the meter with the date is handy for your records.",
])
S("utility-move-in", "utility", "request", "setting up your account", [
    "I've just moved in and need to set up electricity in my name.",
    "New tenant here. How do I start a gas account?",
    "I'm moving in on {date} and need power set up.",
], [
    "I've opened an account in your name, and your welcome pack will arrive by email within 24 hours.",
    "Send me a meter reading from your first day, and I'll set up the account today so billing starts on the "
    "right date.",
    "Your account is set up with billing from your move-in date, and a smart meter appointment will be offered "
    "within 5 days.",
], [
    "There's no connection fee.",
])
S("utility-no-water", "utility", "problem", "your water supply", [
    "We've had no water since this morning.",
    "Water pressure dropped to nothing in our building.",
    "No water at home.",
], [
    "A burst main nearby is being repaired, and water should be back by 4pm today; bottled water is available "
    "at the community centre.",
    "I've raised an urgent job, and an engineer will be with you within 4 hours.",
    "Repairs are underway and supply will return by tonight, and you'll get $20 in compensation on your next bill.",
], [
    "Run the cold tap for a few minutes when it comes back.",
])
S("utility-gas-smell", "utility", "urgent", "the gas smell", [
    "I can smell gas in my kitchen.",
    "There's a strong gas smell outside our house.",
    "Gas smell!!",
], [
    "An emergency engineer is on the way and will be with you within 1 hour; please open windows, don't use "
    "switches or flames, and leave the building.",
    "I've logged an emergency job, and an engineer will arrive within 60 minutes. If it's safe, turn off the "
    "gas at the meter and wait outside.",
    "An engineer has been dispatched and will arrive within the hour. Please go outside and wait there.",
], [
    "If anyone feels unwell, call the emergency services straight away.",
])
S("utility-payment-plan", "utility", "request", "your payment options", [
    "I can't afford to pay my {amount} bill all at once. Can I pay in instalments?",
    "Money is tight this month. Can I spread my bill of {amount}?",
    "Payment plan for {amount} please.",
], [
    "I've set up a plan to pay the {amount} over 6 monthly instalments, starting on your next payday, with no "
    "extra fees.",
    "I've paused collection for 30 days and split the {amount} into 3 payments; you'll get the confirmation by "
    "email today.",
    "I've put the {amount} on a 4-month plan, and no late fees will be added while you stick to it.",
], [
    "If things change, reply here and we can adjust the plan.",
])

# ---------------------------------------------------------------- insurance claims
S("insurance-claim-status", "insurance", "problem", "your claim", [
    "I filed claim {claim} three weeks ago and heard nothing.",
    "What's happening with my insurance claim {claim}?",
    "Claim {claim} - any update?",
], [
    "Claim {claim} was waiting on an internal review; I've escalated it, and you'll have a decision by {day}.",
    "Your claim {claim} was approved this morning, and payment will reach your account within 3 business days.",
    "I've assigned claim {claim} to a dedicated handler, who will call you by tomorrow at 5pm.",
], [
    "You can also track it online under My Claims.",
])
S("insurance-car-accident", "insurance", "urgent", "your accident", [
    "I was just in a car accident. No one is hurt but my car can't be driven.",
    "Someone rear-ended me and the car won't start. How do I make a claim?",
    "Car accident, the car can't be driven. Need help.",
], [
    "I've opened your claim, reference {case}, and a tow truck will reach you within 60 minutes.",
    "I've started the claim, sent a recovery truck that's 45 minutes away, and booked a courtesy car for tomorrow.",
    "Your claim is open, a tow truck is on its way now, and our repair centre will assess the car by {day}.",
], [
    "If you can, take photos of both cars and swap details with the other driver.",
])
S("insurance-claim-denied", "insurance", "problem", "your declined claim", [
    "My claim {claim} was rejected with no explanation.",
    "Why was claim {claim} denied? I've paid premiums for years.",
    "Claim {claim} refused. I want to appeal.",
], [
    "I've opened a formal review of claim {claim}, and a senior handler will send you a written decision within "
    "10 business days.",
    "I've requested the reasons behind the decision on claim {claim}, and you'll get a full written explanation "
    "by {day}.",
    "I've lodged an appeal on claim {claim}, and a senior assessor will call you within 48 hours.",
], [
    "If you have extra receipts or photos, reply with them to support the review.",
])
S("insurance-policy-documents", "insurance", "request", "your policy documents", [
    "I need a copy of my policy documents for my mortgage lender.",
    "Can you send my insurance certificate?",
    "Policy documents please.",
], [
    "I've emailed your full policy documents and certificate just now.",
    "Your documents are in your inbox, and I've also posted a paper copy that arrives within 3 business days.",
    "You can download them under My Policy, and I've emailed them to you as well a moment ago.",
], [
    "They're valid as proof of cover straight away.",
])
S("insurance-water-damage", "insurance", "urgent", "the water damage", [
    "A pipe burst and flooded our kitchen. What do we do?",
    "A water leak from upstairs has ruined our ceiling.",
    "Flooded flat, I need to claim.",
], [
    "I've opened your claim, reference {case}, and an emergency plumber will come within 4 hours.",
    "I've logged the claim, and a loss adjuster will visit on {day} {window} to assess the damage.",
    "I've started the claim and approved drying equipment, which will be delivered tomorrow.",
], [
    "Please take photos before cleaning up, and keep receipts for anything you buy.",
])
S("insurance-premium-increase", "insurance", "problem", "your renewal price", [
    "My renewal price went up by {amount} with no claims. Why?",
    "Premium increased by {amount}! Same car, same address.",
    "Renewal is {amount} higher. Explain.",
], [
    "Your no-claims discount was missing from the renewal, so I've applied it, and the {amount} increase is gone "
    "as of today.",
    "I've matched last year's price for another 12 months, so the {amount} increase is removed.",
    "I've re-quoted your renewal without the {amount} increase, and you'll get the updated documents within 24 hours.",
], [
    "Your renewal date stays the same, and nothing else changes.",
])

# ---------------------------------------------------------------- appointments
S("appt-reschedule", "appt", "request", "your appointment", [
    "I need to move my appointment on {date}. Something came up at work.",
    "Can I reschedule my appointment on {date} to later in the week?",
    "Reschedule my {date} appointment pls.",
], [
    "I've moved your appointment from {date} to {day} at {newtime}, and the confirmation is in your email.",
    "I've cancelled your {date} slot without any fee and booked you in for {day} at {newtime}.",
    "I've held {day} at {newtime} for you in place of {date}; reply to confirm and it's booked.",
], [
    "You'll get a text reminder the day before.",
])
S("appt-cancel", "appt", "request", "cancelling your appointment", [
    "Please cancel my appointment on {date}.",
    "I can't make it on {date}. Cancel please.",
    "Cancel appointment {date}.",
], [
    "I've cancelled your appointment on {date}, and no fee applies.",
    "Your {date} appointment is cancelled, and you'll get a confirmation text within a few minutes.",
    "Your {date} appointment is cancelled, and your deposit will be refunded within 3-5 business days.",
], [
    "You can rebook online whenever you're ready.",
])
S("appt-long-wait", "appt", "problem", "the long wait", [
    "I've been waiting 90 minutes past my appointment time and no one has said anything.",
    "I waited forever at the clinic today and left without being seen.",
    "My appointment ran hours late.",
], [
    "I've booked you the first appointment tomorrow at 8:30am, so there's no wait.",
    "I've refunded today's fee and booked you a priority slot on {day} at {newtime}.",
    "The practice manager will call you today, and you're booked in on {day} at {newtime} at no charge.",
], [
    "If the time doesn't suit you, reply and I'll change it.",
])
S("appt-confirmation-missing", "appt", "problem", "your booking confirmation", [
    "I booked an appointment online but never got a confirmation. Is it booked?",
    "No confirmation email for my booking on {date}.",
    "Did my booking go through?",
], [
    "Your appointment is confirmed, and I've resent the confirmation by email and text just now.",
    "The booking didn't save because of a website error, so I've booked it for you, and the confirmation is on "
    "its way.",
    "I can see your booking, and I've resent the confirmation, which should arrive within 5 minutes.",
], [
    "You can add it to your calendar from the link in the email.",
])
S("appt-double-booked", "appt", "problem", "the double booking", [
    "I arrived for my appointment and they said someone else had my slot.",
    "You double-booked my appointment and sent me home.",
    "Double booked, wasted my afternoon.",
], [
    "I've booked you the first slot tomorrow at {newtime}, and I've waived the fee for the visit.",
    "I've booked you in for {day} at {newtime} with priority, and I've refunded your travel costs up to $20.",
    "I've confirmed a slot on {day} at {newtime}, and the practice manager will call you today.",
], [
    "You'll get a confirmation by text.",
])
S("appt-results-delay", "appt", "problem", "your results", [
    "I had blood tests 2 weeks ago and still no results.",
    "When will my test results be ready? It's been ages.",
    "My results are delayed.",
], [
    "Your results arrived at the clinic yesterday; I've asked the doctor to review them, and you'll get a call "
    "by {day}.",
    "I've chased the lab, and your results will be released to your patient account by tomorrow afternoon.",
    "I've booked you a phone call with the doctor on {day} at {newtime} to go through the results.",
], [
    "If anything urgent had shown up, the clinic would have called you straight away.",
])

# ---------------------------------------------------------------- warranty repairs
S("warranty-laptop-repair", "warranty", "problem", "your laptop repair", [
    "My laptop's screen flickers and it's only 8 months old. Is it covered?",
    "My laptop keyboard stopped working, and it's still under warranty.",
    "Laptop broken, under warranty.",
], [
    "Yes, it's covered; I've booked a free courier pickup for {day}, and the repair takes about 5 business days.",
    "I've registered your warranty repair, reference {case}, and a prepaid box will arrive tomorrow to send it in.",
    "It's covered under warranty, so I've booked a repair at our service centre on {day} at {newtime}, done "
    "while you wait.",
], [
    "Please back up your files before you send it.",
])
S("warranty-repair-delayed", "warranty", "problem", "your repair", [
    "My phone has been at your repair centre for 3 weeks. You said 5 days.",
    "My repair is taking forever - it's been a month.",
    "Where's my repaired device?",
], [
    "The missing part arrived today; your device will be repaired and shipped back by {day}.",
    "Since it's been far too long, I'm sending you a brand-new replacement instead, and it ships today.",
    "I've arranged a free loan device for delivery tomorrow, and your repair will be finished by {day}.",
], [
    "You'll get tracking the moment it ships.",
])
S("warranty-appliance", "warranty", "problem", "your {appliance}", [
    "My {appliance} stopped working and it's under warranty.",
    "The {appliance} I bought from you last year is leaking.",
    "My {appliance} is broken. It has a warranty.",
], [
    "I've booked a technician to repair your {appliance} on {day} {window}, with parts and labour covered.",
    "A technician will visit within 48 hours, and you'll get a text today with the exact time.",
    "I've approved a replacement {appliance}, which will be delivered and installed on {day}, and the old one "
    "taken away.",
], [
    "Please make sure the {appliance} is easy to reach when the technician arrives.",
])
S("warranty-replacement-faulty", "warranty", "problem", "the faulty replacement", [
    "The replacement {gadget} you sent is faulty too!",
    "Second {gadget}, same problem. I'm done.",
    "The replacement {gadget} is also broken.",
], [
    "I've refunded the {gadget} in full today instead of sending another, and it will reach your account in 3-5 "
    "business days.",
    "I've sent an upgraded model from a newer batch by express, arriving by {day}.",
    "A specialist will test the next {gadget} before it ships tomorrow, and I've added a 2-year extended warranty.",
], [
    "Use the prepaid label in your email to return the faulty one.",
])
S("warranty-claim-rejected", "warranty", "problem", "your warranty claim", [
    "You rejected my warranty claim on my {gadget}, saying it's accidental damage, but it broke on its own.",
    "Warranty claim denied. The {gadget} just stopped working!",
    "Why was my warranty claim on the {gadget} refused?",
], [
    "I've reopened your claim, and a senior technician will re-inspect the {gadget}, with a decision by {day}.",
    "I've reviewed the photos again and agree it's a manufacturing fault, so I've approved the repair free of "
    "charge today.",
    "I've escalated the case, reference {case}, and you'll get a written decision within 5 business days.",
], [
    "Your {gadget} will be returned free of charge either way.",
])
S("warranty-headphones", "warranty", "problem", "your headphones", [
    "My headphones won't charge anymore. I bought them 4 months ago.",
    "My earbuds stopped charging, one side is dead.",
    "Headphones not charging.",
], [
    "They're covered, so I've sent a replacement pair today, arriving by {day}.",
    "I've approved a warranty swap, and the new pair ships within 24 hours with a return label for the old ones.",
    "I've registered the fault, and a replacement goes out today by tracked post.",
], [
    "You can keep using the old ones until the new pair arrives.",
])

# ---------------------------------------------------------------- memberships
S("membership-cancel", "membership", "request", "your membership", [
    "I'd like to cancel my gym membership. I'm moving away.",
    "How do I cancel my membership? The website sends me to a form that doesn't work.",
    "Cancel my gym membership.",
], [
    "I've cancelled your membership as of the end of this month, and no further payments will be taken.",
    "Your membership is cancelled today, and I've waived the notice period.",
    "I've cancelled it and emailed you a confirmation with your final payment date.",
], [
    "Your access card works until the last paid day.",
])
S("membership-freeze", "membership", "request", "freezing your membership", [
    "I broke my leg. Can I pause my gym membership for two months?",
    "Is it possible to freeze my membership while I'm travelling?",
    "Freeze my membership please.",
], [
    "I've frozen your membership for 2 months from today at no charge, and it restarts automatically after that.",
    "Your membership is paused from today, and your next payment moves to when it restarts.",
    "I've paused your membership and refunded this month's fee, since you can't use it.",
], [
    "Reply any time if you want to restart sooner.",
])


# ================================================================================================
# generation
# ================================================================================================
FORMATTER = string.Formatter()


def fields(text: str) -> set:
    return {f for _, f, _, _ in FORMATTER.parse(text) if f}


def check_situations() -> None:
    """Every slot a response uses must be supplied by every prompt of its situation (or made up by the agent)."""
    keys = [s["key"] for s in SITUATIONS]
    assert len(keys) == len(set(keys)), "duplicate situation keys"
    for s in SITUATIONS:
        assert s["domain"] in DOMAINS and s["kind"] in OPENERS, s["key"]
        assert len(s["prompts"]) >= 3 and len(s["acts"]) >= 3 and len(s["nexts"]) >= 1, s["key"]
        given = set.intersection(*(fields(p) for p in s["prompts"]))
        for text in s["acts"] + s["nexts"] + [s["topic"]]:
            used = fields(text)
            unknown = used - CUSTOMER_SLOTS - AGENT_SLOTS
            assert not unknown, (s["key"], unknown)
            missing = (used & CUSTOMER_SLOTS) - given
            assert not missing, f"{s['key']}: {text!r} uses {missing}, which some prompt does not give"
        for p in s["prompts"]:
            assert not (fields(p) - CUSTOMER_SLOTS), (s["key"], p)


def wrappers_for(kind: str) -> list:
    """Angry wrappers only suit complaints; emergencies get no small talk."""
    if kind == "urgent":
        return [w for w in WRAPPERS if w[0] in ("plain", "named")]
    return [w for w in WRAPPERS if w[0] != "angry" or kind == "problem"]


def make_prompt(rng: random.Random, sit: dict, template: str, slots: dict) -> tuple[str, str]:
    wraps = wrappers_for(sit["kind"])
    for _ in range(20):
        tone, wrap = rng.choice(wraps)
        text = "Customer: " + wrap.replace("{b}", template).format(**slots)
        if len(text) <= MAX_PROMPT_CHARS:
            return text, tone
    return "Customer: " + template.format(**slots), "plain"


def join(parts: list) -> str:
    return " ".join(p.strip() for p in parts if p)


def make_chosen(rng: random.Random, sit: dict, act: str, tone: str, slots: dict) -> str:
    kind = sit["kind"]
    if rng.random() < CRISP_CHOSEN_SHARE:
        parts = [rng.choice(SHORT_OPENERS[kind]), act]
        return join(parts).format(**slots)
    r = rng.random()
    if tone == "named" and r < 0.6:
        opener = rng.choice(NAMED_OPENERS[kind])
    elif tone == "angry" and r < 0.75:
        opener = rng.choice(ANGRY_OPENERS)
    elif tone == "confused" and r < 0.6:
        opener = rng.choice(CONFUSED_OPENERS[kind])
    else:
        opener = rng.choice(OPENERS[kind])
    parts = [opener, act]
    if rng.random() < 0.7:
        parts.append(rng.choice(sit["nexts"]))
    if rng.random() < 0.35:
        pool = NAMED_CLOSINGS if tone == "named" and rng.random() < 0.5 else CLOSINGS
        parts.append(rng.choice(pool))
    text = join(parts).format(**slots)
    while len(text) > MAX_RESPONSE_CHARS and len(parts) > 2:
        parts.pop()
        text = join(parts).format(**slots)
    return text


REJECTED_KINDS = [("long", LONG_REJECTED_SHARE), ("curt", 0.20), ("polite", 0.20), ("topic", 0.14),
                  ("deflect", 0.11), ("ask", 0.08)]
assert abs(sum(w for _, w in REJECTED_KINDS) - 1) < 1e-9


def long_vague(rng: random.Random, sit: dict, target: int, fmt) -> str:
    start = rng.choice(LONG_START)
    end = rng.choice(LONG_END)
    middles = LONG_MIDDLE + DOMAINS[sit["domain"]]["long"]
    order = rng.sample(middles, len(middles))
    parts = [start]
    for sentence in order:
        if len(fmt(join(parts + [end]))) >= target:
            break
        if len(fmt(join(parts + [sentence, end]))) <= MAX_RESPONSE_CHARS:
            parts.append(sentence)
    return fmt(join(parts + [end]))


def make_rejected(rng: random.Random, sit: dict, template: str, slots: dict, chosen: str) -> str:
    dom = DOMAINS[sit["domain"]]
    dept = rng.choice(dom["depts"])
    topic = sit["topic"].format(**slots)
    idnames = [name for slot, name in ID_NAMES if slot in fields(template)]
    values = dict(slots, topic=topic, dept=dept, Dept=dept[0].upper() + dept[1:],
                  idname=idnames[0] if idnames else "account number")

    def fmt(text: str) -> str:
        return text.format(**values)

    r, kind = rng.random(), REJECTED_KINDS[-1][0]
    for name, weight in REJECTED_KINDS:
        if r < weight:
            kind = name
            break
        r -= weight
    if kind == "long":
        target = min(MAX_RESPONSE_CHARS, max(len(chosen) + rng.randint(10, 90), rng.randint(250, 330)))
        return long_vague(rng, sit, target, fmt)
    if kind == "curt":
        if rng.random() < 0.3:
            return fmt(rng.choice(CURT_TOPIC))
        return fmt(rng.choice(CURT + dom["curt"]))
    # an empathetic opener alone does not make a good answer (requests get no apology-style prefix)
    prefix = rng.choice(OPENERS[sit["kind"]]) if sit["kind"] != "request" and rng.random() < 0.3 else ""
    if kind == "polite":
        return fmt(join([prefix, rng.choice(POLITE)]))
    if kind == "topic":
        return fmt(join([prefix, rng.choice(POLITE_TOPIC)]))
    if kind == "deflect":
        return fmt(join([prefix, rng.choice(DEFLECT)]))
    if idnames and rng.random() < 0.75:
        return fmt(rng.choice(ASK_ID))
    return fmt(rng.choice(ASK_GENERIC))


def generate() -> list[dict]:
    check_situations()
    rng = random.Random(SEED)
    rows, seen = [], set()
    for sit in SITUATIONS:
        n_pairs = 4 if rng.random() < FOUR_PAIR_SHARE else 3
        n_inst = min(len(sit["prompts"]), n_pairs, rng.choice([2, 3, 3, 4]))
        templates = rng.sample(sit["prompts"], n_inst)
        instances = []
        for template in templates:
            slots = sample_slots(rng)
            prompt, tone = make_prompt(rng, sit, template, slots)
            instances.append((template, slots, prompt, tone))
        acts = rng.sample(sit["acts"], len(sit["acts"]))
        for i in range(n_pairs):
            template, slots, prompt, tone = instances[i % n_inst]
            for _ in range(20):
                chosen = make_chosen(rng, sit, acts[i % len(acts)], tone, slots)
                rejected = make_rejected(rng, sit, template, slots, chosen)
                if (prompt, chosen, rejected) not in seen and chosen != rejected:
                    break
            else:
                raise RuntimeError(f"could not make a new pair for {sit['key']}")
            seen.add((prompt, chosen, rejected))
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "situation": sit["key"]})
    rng.shuffle(rows)
    return [{"id": f"support-{i:04d}", "prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"],
             "source": SOURCE, "situation": r["situation"]} for i, r in enumerate(rows, 1)]


def render(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


# ================================================================================================
# checks
# ================================================================================================
VAGUE_BREAKERS = ("today", "tomorrow", "tonight", "within 1", "within 2", "within 3", "within 5",
                  "business days", "I've refunded", "I've sent", "I've booked", "I've cancelled")


def check(rows: list[dict]) -> dict:
    """Sanity checks (raise AssertionError on a problem) and the figures quoted in the README."""
    problems = []
    triples = Counter((r["prompt"], r["chosen"], r["rejected"]) for r in rows)
    if any(v > 1 for v in triples.values()):
        problems.append("duplicate (prompt, chosen, rejected)")
    for r in rows:
        for k in ("id", "prompt", "chosen", "rejected", "source", "situation"):
            if not isinstance(r[k], str) or not r[k].strip():
                problems.append(f"{r['id']}: empty {k}")
        if r["chosen"] == r["rejected"]:
            problems.append(f"{r['id']}: chosen == rejected")
        for k in ("prompt", "chosen", "rejected"):
            text = r[k]
            if not text.isascii() or "\n" in text or "{" in text or "}" in text or "**" in text or "`" in text:
                problems.append(f"{r['id']}: odd characters in {k}")
        if len(r["prompt"]) > MAX_PROMPT_CHARS:
            problems.append(f"{r['id']}: prompt longer than {MAX_PROMPT_CHARS}")
        if max(len(r["chosen"]), len(r["rejected"])) > MAX_RESPONSE_CHARS:
            problems.append(f"{r['id']}: response longer than {MAX_RESPONSE_CHARS}")
        if any(w in r["rejected"] for w in VAGUE_BREAKERS):
            problems.append(f"{r['id']}: rejected response sounds concrete: {r['rejected']!r}")
    prompts = Counter(r["prompt"] for r in rows)
    if max(prompts.values()) > 3:
        problems.append(f"a prompt appears {max(prompts.values())} times")
    assert not problems, "\n".join(problems[:20])

    n = len(rows)
    longer = sum(len(r["chosen"]) > len(r["rejected"]) for r in rows)
    same = sum(len(r["chosen"]) == len(r["rejected"]) for r in rows)
    situations = Counter(r["situation"] for r in rows)
    by_key = {s["key"]: s["domain"] for s in SITUATIONS}
    domains = Counter(by_key[r["situation"]] for r in rows)

    def stat(k: str) -> tuple:
        lengths = [len(r[k]) for r in rows]
        return min(lengths), round(sum(lengths) / n), max(lengths)

    return {
        "pairs": n,
        "situations": len(situations),
        "pairs_per_situation": (min(situations.values()), max(situations.values())),
        "distinct_prompts": len(prompts),
        "max_prompt_repeats": max(prompts.values()),
        "chosen_longer_share": round(longer / n, 4),
        "same_length_share": round(same / n, 4),
        "longer_wins_accuracy": round((longer + 0.5 * same) / n, 4),
        "prompt_chars_min_mean_max": stat("prompt"),
        "chosen_chars_min_mean_max": stat("chosen"),
        "rejected_chars_min_mean_max": stat("rejected"),
        "pairs_per_domain": dict(sorted(domains.items())),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only verify that the file is up to date; write nothing")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output file (default: {OUT})")
    args = ap.parse_args(argv)

    rows = generate()
    stats = check(rows)
    data = render(rows)
    if args.check:
        current = args.out.read_bytes() if args.out.is_file() else b""
        if current != data:
            print(f"{args.out} is out of date; run: python scripts/make_support_data.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(data)
        print(f"wrote {args.out} ({len(data)} bytes)")
    for k, v in stats.items():
        print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
